//! A hint for a header that reads as one column: the file is probably separated by another
//! delimiter than the one it was read with.

/// When a header reads as one column holding another delimiter (a `;` file read with `,`, or
/// the reverse), a hint naming the flag that reads it: ` (the header reads as one column: is
/// the file `;`-separated? pass --delimiter ';')`; else nothing.
pub fn one_column_hint(columns: &[String]) -> String {
    let [only] = columns else {
        return String::new();
    };
    match [',', ';', '\t', '|']
        .into_iter()
        .find(|c| only.contains(*c))
    {
        Some(c) => {
            let shown = if c == '\t' {
                "\\t".to_string()
            } else {
                c.to_string()
            };
            format!(
                " (the header reads as one column: is the file `{shown}`-separated? pass --delimiter '{shown}')"
            )
        }
        None => String::new(),
    }
}
