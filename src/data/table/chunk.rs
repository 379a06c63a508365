//! What a streaming pass over a data file hands out and reports, whatever the file's format
//! (CSV: [`super::stream`]; Parquet: [`super::parquet_file`]).

/// One chunk's parsed rows.
pub struct Chunk<'a> {
    /// The chunk's position in the file: 0, 1, ..
    pub index: usize,
    /// The number of features.
    pub d: usize,
    /// Row-major: the d features, then the target, of each valid row.
    pub rows: &'a [f64],
}

/// What a pass over the file saw.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamInfo {
    /// Every column of the header, in file order.
    pub columns: Vec<String>,
    /// The feature columns, in the order of a row's values.
    pub feature_names: Vec<String>,
    /// The target column.
    pub target_name: String,
    /// [`super::content_hash`] of the file's bytes.
    pub content_hash: u64,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The valid rows of each chunk, in order.
    pub chunk_rows: Vec<u64>,
    /// Rows skipped because of an invalid cell (only with `drop_invalid_rows`).
    pub dropped_rows: usize,
}

impl StreamInfo {
    /// The valid rows of the file.
    pub fn rows(&self) -> u64 {
        self.chunk_rows.iter().sum()
    }

    /// The index of each chunk's first row among the file's valid rows.
    pub fn chunk_offsets(&self) -> Vec<u64> {
        let mut offset = 0;
        self.chunk_rows
            .iter()
            .map(|rows| {
                let first = offset;
                offset += rows;
                first
            })
            .collect()
    }
}
