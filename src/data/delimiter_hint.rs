//! A hint for a header that reads as one column: the file is probably separated by another
//! delimiter than the one it was read with.

/// When a header reads as one column holding another delimiter (a `;` file read with `,`, or
/// the reverse), a hint naming the flag that reads it: ` (the header reads as one column: is
/// the file `;`-separated? pass --delimiter ';')`; else nothing.
/// `in_use`: the delimiter the file was read with, never suggested (a quoted name may hold it).
pub fn one_column_hint(columns: &[String], in_use: Option<char>) -> String {
    let [only] = columns else {
        return String::new();
    };
    match [',', ';', '\t', '|']
        .into_iter()
        .filter(|c| Some(*c) != in_use)
        .find(|c| only.contains(*c))
    {
        Some(c) => {
            // `\t` is what --delimiter takes for a tab.
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
