//! Data sets: CSV loading, standardization, train/test split, one-hot encoding.
//!
//! A [`Dataset`] holds samples as two flat row-major buffers, `x` (`inputs` values per sample)
//! and `y` (`outputs` values per sample), which is what the training loop and the networks'
//! slice methods consume.
//!
//! ```
//! use symnet_runtime::data::Dataset;
//!
//! let xor = Dataset::<f32>::from_rows(
//!     &[vec![0.0, 0.0], vec![0.0, 1.0], vec![1.0, 0.0], vec![1.0, 1.0]],
//!     &[vec![0.0], vec![1.0], vec![1.0], vec![0.0]],
//! )?;
//! assert_eq!(xor.len(), 4);
//! assert_eq!(xor.x(1), &[0.0, 1.0]);
//! assert_eq!(xor.y(1), &[1.0]);
//! # Ok::<(), symnet_runtime::data::DataError>(())
//! ```

use std::path::{Path, PathBuf};

use crate::{Network, Scalar, SplitMix64, MAX_WIDTH};

/// The most bytes of a cell's text or a column's name that an error keeps (see [`excerpt`]).
pub(crate) const EXCERPT_BYTES: usize = 64;

/// `text` for an error message: unchanged up to `max` bytes; a longer text is cut to its first
/// `max` bytes at most (at a character boundary), followed by `…` and its full length, as in
/// `12345…(10485760 bytes)`, so that a huge cell does not make a huge message.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &text[..end], text.len())
}

/// An error while building or loading a data set. File errors name the file, the 1-based data
/// row (the header is not counted) and the column.
///
/// Cell texts and column names in errors are kept whole up to 64 bytes; a longer one is cut to
/// its first 64 bytes at most (at a character boundary) followed by `…` and its full length in
/// bytes, as in `12345…(10485760 bytes)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: cannot read the file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The CSV reader failed (for example on invalid UTF-8).
    #[error("{}: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: csv::Error,
    },
    /// The file has no header row or no data rows.
    #[error("{}: no data rows (expected a header row of column names, then one row per sample)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The header has fewer than two columns (at least one feature and the target are needed).
    #[error("{}: the header has {columns} column(s); at least one feature column and the target column (last) are needed", path.display())]
    TooFewColumns {
        /// The file.
        path: PathBuf,
        /// The number of columns in the header.
        columns: usize,
    },
    /// A row has a different number of cells than the header.
    #[error("{}: row {row} has {found} cells, but the header has {expected} columns", path.display())]
    Ragged {
        /// The file.
        path: PathBuf,
        /// The 1-based data row.
        row: usize,
        /// The number of columns of the header.
        expected: usize,
        /// The number of cells in the row.
        found: usize,
    },
    /// A cell is not a finite number of the data set's scalar type: not a number at all, empty,
    /// NaN, infinite, or too large for the type (`1e39` is finite as an `f64` but overflows
    /// `f32`; checked for features and regression targets).
    #[error("{}: row {row}, column `{column}`: `{value}` is not a finite number", path.display())]
    NotNumeric {
        /// The file.
        path: PathBuf,
        /// The 1-based data row.
        row: usize,
        /// The column's name (cut after 64 bytes, see [`DataError`]).
        column: String,
        /// The cell's text (cut after 64 bytes, see [`DataError`]).
        value: String,
    },
    /// A class label is not an integer in `0..classes` (`0` or `1` for a binary target).
    #[error("{}: row {row}, column `{column}`: class label `{value}` is not an integer in 0..{classes}", path.display())]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// The 1-based data row.
        row: usize,
        /// The target column's name (cut after 64 bytes, see [`DataError`]).
        column: String,
        /// The cell's text (cut after 64 bytes, see [`DataError`]).
        value: String,
        /// The number of classes.
        classes: usize,
    },
    /// More classes than [`MAX_WIDTH`] were asked for (by
    /// [`Target::Classes`] or [`one_hot`]); checked before anything is read or allocated.
    #[error("{classes} classes are more than the limit of {limit} (the widest layer a network may have)")]
    TooManyClasses {
        /// The number of classes asked for.
        classes: usize,
        /// The limit, [`MAX_WIDTH`].
        limit: usize,
    },
    /// A label given to [`one_hot`] is not below the number of classes.
    #[error("one_hot: label {label} at index {index} is not in 0..{classes}")]
    OneHot {
        /// The position of the label.
        index: usize,
        /// The label.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// Buffers given to [`Dataset::new`] or [`Dataset::from_rows`] do not fit the widths.
    #[error("data set shape: {0}")]
    Shape(String),
    /// A test fraction outside `[0, 1]`.
    #[error("the test fraction must be in [0, 1], got {0}")]
    Fraction(f64),
    /// Statistics given to [`Standardizer::new`] or [`Standardizer::with_targets`] are unusable:
    /// lengths that differ or are zero, a mean that is not finite, a standard deviation that is
    /// not positive and finite.
    #[error("standardizer statistics: {0}")]
    Statistics(String),
}

/// How the last CSV column (the target) becomes the `y` row of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Keep the value: `y` has width 1.
    Regression,
    /// An integer class label in `0..k`, one-hot encoded: `y` has width `k`, which must be in
    /// `1..=`[`MAX_WIDTH`].
    Classes(usize),
    /// A `0` or `1` label, kept as is: `y` has width 1.
    Binary,
}

/// Samples as flat row-major buffers: `x` with `inputs` values per sample, `y` with `outputs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset<T> {
    x: Vec<T>,
    y: Vec<T>,
    inputs: usize,
    outputs: usize,
    feature_names: Vec<String>,
    target_name: String,
}

impl Target {
    /// The width of `y`, or an error for `Classes(0)` and more classes than [`MAX_WIDTH`].
    fn width(self) -> Result<usize, DataError> {
        match self {
            Target::Regression | Target::Binary => Ok(1),
            Target::Classes(0) => Err(DataError::Shape("Target::Classes(0): no classes".into())),
            Target::Classes(k) if k > MAX_WIDTH => Err(DataError::TooManyClasses {
                classes: k,
                limit: MAX_WIDTH,
            }),
            Target::Classes(k) => Ok(k),
        }
    }
}

impl<T: Scalar> Dataset<T> {
    /// A data set from flat buffers. Widths must be at least 1 and the buffers must hold the same
    /// number of whole rows. Features are named `x0, x1, ...` and the target `y`.
    pub fn new(x: Vec<T>, y: Vec<T>, inputs: usize, outputs: usize) -> Result<Self, DataError> {
        if inputs == 0 || outputs == 0 {
            return Err(DataError::Shape(format!(
                "widths must be at least 1, got inputs = {inputs}, outputs = {outputs}"
            )));
        }
        if !x.len().is_multiple_of(inputs)
            || !y.len().is_multiple_of(outputs)
            || x.len() / inputs != y.len() / outputs
        {
            return Err(DataError::Shape(format!(
                "{} x values ({inputs} per sample) and {} y values ({outputs} per sample) are not the same number of whole samples",
                x.len(),
                y.len()
            )));
        }
        Ok(Self {
            x,
            y,
            inputs,
            outputs,
            feature_names: (0..inputs).map(|i| format!("x{i}")).collect(),
            target_name: "y".into(),
        })
    }

    /// A data set from one `Vec` per sample; every row must have the width of the first.
    pub fn from_rows(xs: &[Vec<T>], ys: &[Vec<T>]) -> Result<Self, DataError> {
        if xs.len() != ys.len() {
            return Err(DataError::Shape(format!(
                "{} input rows but {} target rows",
                xs.len(),
                ys.len()
            )));
        }
        let inputs = xs.first().map_or(1, Vec::len);
        let outputs = ys.first().map_or(1, Vec::len);
        for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
            if x.len() != inputs || y.len() != outputs {
                return Err(DataError::Shape(format!(
                    "sample {i} has {} inputs and {} targets; the first has {inputs} and {outputs}",
                    x.len(),
                    y.len()
                )));
            }
        }
        Self::new(xs.concat(), ys.concat(), inputs, outputs)
    }

    /// Loads a CSV file with a header row of names; every column but the last is a feature, the
    /// last one is the target, encoded according to `target`. Cells may be surrounded by spaces.
    ///
    /// Every feature (and a regression target) must be a finite number of type `T`: `1e39` is an
    /// error ([`DataError::NotNumeric`]) in an `f32` data set. `Target::Classes(k)` with `k` of
    /// 0 or above [`MAX_WIDTH`] is an error before the file is opened.
    ///
    /// ```no_run
    /// use symnet_runtime::data::{Dataset, Target};
    /// let iris = Dataset::<f32>::from_csv("iris.csv", Target::Classes(3))?;
    /// println!("{} samples of {:?}", iris.len(), iris.feature_names());
    /// # Ok::<(), symnet_runtime::data::DataError>(())
    /// ```
    pub fn from_csv(path: impl AsRef<Path>, target: Target) -> Result<Self, DataError> {
        let path = path.as_ref();
        target.width()?;
        let file = std::fs::File::open(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(file, path, target)
    }

    /// Like [`Dataset::from_csv`], reading CSV text from `reader`; `path` is only used in errors.
    pub fn from_reader(
        reader: impl std::io::Read,
        path: impl AsRef<Path>,
        target: Target,
    ) -> Result<Self, DataError> {
        let outputs = target.width()?;
        let path = path.as_ref();
        let p = || path.to_path_buf();
        let csv_err = |source: csv::Error| match source.kind() {
            csv::ErrorKind::Io(_) => match source.into_kind() {
                csv::ErrorKind::Io(source) => DataError::Io { path: p(), source },
                _ => unreachable!(),
            },
            _ => DataError::Csv { path: p(), source },
        };
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let header: Vec<String> = rdr
            .headers()
            .map_err(csv_err)?
            .iter()
            .map(str::to_owned)
            .collect();
        if header.is_empty() || header.iter().all(String::is_empty) && header.len() == 1 {
            return Err(DataError::Empty { path: p() });
        }
        if header.len() < 2 {
            return Err(DataError::TooFewColumns {
                path: p(),
                columns: header.len(),
            });
        }
        let inputs = header.len() - 1;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut rows = 0;
        for (i, record) in rdr.records().enumerate() {
            let record = record.map_err(csv_err)?;
            let row = i + 1;
            if record.len() != header.len() {
                return Err(DataError::Ragged {
                    path: p(),
                    row,
                    expected: header.len(),
                    found: record.len(),
                });
            }
            let not_numeric = |column: usize| DataError::NotNumeric {
                path: p(),
                row,
                column: excerpt(&header[column], EXCERPT_BYTES),
                value: excerpt(&record[column], EXCERPT_BYTES),
            };
            // A finite f64, then (for features and regression targets) a finite T.
            let number = |column: usize| match record[column].parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(not_numeric(column)),
            };
            let scalar = |column: usize| {
                let v = T::from_f64(number(column)?);
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(not_numeric(column))
                }
            };
            for column in 0..inputs {
                x.push(scalar(column)?);
            }
            let bad_label = |classes| DataError::LabelOutOfRange {
                path: p(),
                row,
                column: excerpt(&header[inputs], EXCERPT_BYTES),
                value: excerpt(&record[inputs], EXCERPT_BYTES),
                classes,
            };
            match target {
                Target::Regression => y.push(scalar(inputs)?),
                Target::Binary => {
                    let t = number(inputs)?;
                    if t != 0.0 && t != 1.0 {
                        return Err(bad_label(2));
                    }
                    y.push(T::from_f64(t));
                }
                Target::Classes(k) => {
                    let t = number(inputs)?;
                    if t.fract() != 0.0 || t < 0.0 || t >= k as f64 {
                        return Err(bad_label(k));
                    }
                    let start = y.len();
                    y.resize(start + k, T::ZERO);
                    y[start + t as usize] = T::ONE;
                }
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(DataError::Empty { path: p() });
        }
        let mut header = header;
        let target_name = header.pop().unwrap_or_default();
        Ok(Self {
            x,
            y,
            inputs,
            outputs,
            feature_names: header,
            target_name,
        })
    }

    /// The features of sample `i` as an array, ready for a generated network's `forward`,
    /// `loss` or `backward`: `N` is inferred from the use and must be the data set's input width.
    ///
    /// ```
    /// # use symnet_runtime::data::Dataset;
    /// let data = Dataset::<f32>::new(vec![1.0, 2.0, 3.0, 4.0], vec![0.0, 1.0], 2, 1)?;
    /// let x: &[f32; 2] = data.row(1);
    /// assert_eq!(x, &[3.0, 4.0]);
    /// # Ok::<(), symnet_runtime::data::DataError>(())
    /// ```
    ///
    /// # Panics
    /// If `i` is out of range or `N` is not [`Dataset::inputs`].
    #[track_caller]
    pub fn row<const N: usize>(&self, i: usize) -> &[T; N] {
        self.check_width(N, self.inputs, "row", "inputs");
        crate::__private::array(self.x(i), "Dataset::row")
    }

    /// Every sample's features as arrays, ready for `forward_batch`, `loss_batch` and
    /// `backward_batch`: `N` must be the data set's input width.
    ///
    /// ```
    /// # use symnet_runtime::data::Dataset;
    /// let data = Dataset::<f32>::new(vec![1.0, 2.0, 3.0, 4.0], vec![0.0, 1.0], 2, 1)?;
    /// let xs: &[[f32; 2]] = data.rows();
    /// assert_eq!(xs, &[[1.0, 2.0], [3.0, 4.0]]);
    /// # Ok::<(), symnet_runtime::data::DataError>(())
    /// ```
    ///
    /// # Panics
    /// If `N` is not [`Dataset::inputs`].
    #[track_caller]
    pub fn rows<const N: usize>(&self) -> &[[T; N]] {
        self.check_width(N, self.inputs, "rows", "inputs");
        crate::__private::rows(&self.x, "Dataset::rows")
    }

    /// The target of sample `i` as an array; `M` must be the data set's output width.
    ///
    /// # Panics
    /// If `i` is out of range or `M` is not [`Dataset::outputs`].
    #[track_caller]
    pub fn target<const M: usize>(&self, i: usize) -> &[T; M] {
        self.check_width(M, self.outputs, "target", "outputs");
        crate::__private::array(self.y(i), "Dataset::target")
    }

    /// Every sample's target as arrays; `M` must be the data set's output width.
    ///
    /// # Panics
    /// If `M` is not [`Dataset::outputs`].
    #[track_caller]
    pub fn targets<const M: usize>(&self) -> &[[T; M]] {
        self.check_width(M, self.outputs, "targets", "outputs");
        crate::__private::rows(&self.y, "Dataset::targets")
    }

    #[track_caller]
    fn check_width(&self, asked: usize, has: usize, method: &str, what: &str) {
        assert!(
            asked == has,
            "Dataset::{method}: the data set has {has} {what} per sample, but {asked} were asked for (does the network's width match the data?)"
        );
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.x.len() / self.inputs
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// The input width.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The target width.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The inputs of sample `i` (panics if `i >= len()`).
    #[track_caller]
    pub fn x(&self, i: usize) -> &[T] {
        &self.x[i * self.inputs..(i + 1) * self.inputs]
    }

    /// The target of sample `i` (panics if `i >= len()`).
    #[track_caller]
    pub fn y(&self, i: usize) -> &[T] {
        &self.y[i * self.outputs..(i + 1) * self.outputs]
    }

    /// All inputs, row-major.
    pub fn xs(&self) -> &[T] {
        &self.x
    }

    /// All targets, row-major.
    pub fn ys(&self) -> &[T] {
        &self.y
    }

    /// The names of the feature columns.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The name of the target column.
    pub fn target_name(&self) -> &str {
        &self.target_name
    }

    /// The samples at `indices`, in that order (panics on an index out of range).
    pub fn select(&self, indices: &[usize]) -> Self {
        let mut x = Vec::with_capacity(indices.len() * self.inputs);
        let mut y = Vec::with_capacity(indices.len() * self.outputs);
        for &i in indices {
            x.extend_from_slice(self.x(i));
            y.extend_from_slice(self.y(i));
        }
        Self {
            x,
            y,
            inputs: self.inputs,
            outputs: self.outputs,
            feature_names: self.feature_names.clone(),
            target_name: self.target_name.clone(),
        }
    }

    /// A seeded random split into `(train, test)`: `round(len * test_fraction)` samples, drawn by
    /// a shuffle deterministic for `seed`, go to `test`, the others to `train`.
    ///
    /// ```
    /// # use symnet_runtime::data::Dataset;
    /// let d = Dataset::<f64>::new((0..10).map(f64::from).collect(), vec![0.0; 10], 1, 1)?;
    /// let (train, test) = d.split(0.2, 7)?;
    /// assert_eq!((train.len(), test.len()), (8, 2));
    /// # Ok::<(), symnet_runtime::data::DataError>(())
    /// ```
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(Self, Self), DataError> {
        if !(0.0..=1.0).contains(&test_fraction) {
            return Err(DataError::Fraction(test_fraction));
        }
        let n = self.len();
        let n_test = ((n as f64 * test_fraction).round() as usize).min(n);
        let order = shuffled(n, seed);
        let (test, train) = order.split_at(n_test);
        Ok((self.select(train), self.select(test)))
    }
}

/// `0..n` in an order fixed by `seed` (Fisher-Yates with [`SplitMix64`]).
pub(crate) fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, &mut SplitMix64::new(seed));
    order
}

/// Fisher-Yates shuffle.
pub(crate) fn shuffle(v: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
}

/// One-hot encodes class labels: a flat buffer of `labels.len()` rows of `classes` values.
///
/// `classes` must be in `1..=`[`MAX_WIDTH`] (else [`DataError::Shape`] or
/// [`DataError::TooManyClasses`], before anything is allocated), and every label below it
/// ([`DataError::OneHot`]).
///
/// ```
/// use symnet_runtime::data::one_hot;
/// assert_eq!(one_hot::<f32>(&[2, 0], 3)?, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
/// # Ok::<(), symnet_runtime::data::DataError>(())
/// ```
pub fn one_hot<T: Scalar>(labels: &[usize], classes: usize) -> Result<Vec<T>, DataError> {
    if classes == 0 {
        return Err(DataError::Shape("one_hot: 0 classes".into()));
    }
    if classes > MAX_WIDTH {
        return Err(DataError::TooManyClasses {
            classes,
            limit: MAX_WIDTH,
        });
    }
    let len = labels.len().checked_mul(classes).ok_or_else(|| {
        DataError::Shape(format!(
            "one_hot: {} labels of {classes} classes do not fit in memory",
            labels.len()
        ))
    })?;
    let mut out = vec![T::ZERO; len];
    for (index, &label) in labels.iter().enumerate() {
        if label >= classes {
            return Err(DataError::OneHot {
                index,
                label,
                classes,
            });
        }
        out[index * classes + label] = T::ONE;
    }
    Ok(out)
}

/// Per-column standardization `(v - mean) / std` of the features and, optionally, of the
/// targets: fitted on a training split, applied to every split, and saved with the weights
/// ([`io::save_model`](crate::io::save_model)) so that a reloaded model takes and gives values in
/// raw units.
///
/// [`Standardizer::fit`] fits the features only (the targets are left as they are: class labels,
/// probabilities); [`Standardizer::fit_with_targets`] fits the targets as well, for regression.
/// [`Standardizer::new`] and [`Standardizer::with_targets`] build one from known statistics.
/// Columns with zero variance are only centered (their scale is left at 1).
///
/// ```
/// use symnet_runtime::data::{Dataset, Standardizer};
/// let train = Dataset::<f64>::new(vec![1.0, 5.0, 3.0, 5.0], vec![0.0, 0.0], 2, 1)?;
/// let s = Standardizer::fit(&train);
/// assert_eq!(s.mean(), &[2.0, 5.0]);
/// assert_eq!(s.std(), &[1.0, 1.0]); // the second column is constant: left unscaled
/// let t = s.transform(&train);
/// assert_eq!(t.x(0), &[-1.0, 0.0]);
/// # Ok::<(), symnet_runtime::data::DataError>(())
/// ```
///
/// A regression data set, features and target standardized by one object, and a prediction in
/// raw units:
///
/// ```
/// use symnet_runtime::data::{Dataset, Standardizer};
/// let train = Dataset::<f64>::new(vec![1.0, 3.0], vec![10.0, 30.0], 1, 1)?;
/// let s = Standardizer::fit_with_targets(&train);
/// assert_eq!((s.target_mean(), s.target_std()), (Some(&[20.0][..]), Some(&[10.0][..])));
/// let t = s.transform(&train); // x and y standardized
/// assert_eq!((t.xs(), t.ys()), (&[-1.0, 1.0][..], &[-1.0, 1.0][..]));
/// let mut out = [0.5]; // a network's output, in standardized units
/// s.unscale_target(&mut out);
/// assert_eq!(out, [25.0]);
/// # Ok::<(), symnet_runtime::data::DataError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    mean: Vec<f64>,
    std: Vec<f64>,
    /// The targets' means and scales, if fitted.
    target: Option<(Vec<f64>, Vec<f64>)>,
}

/// The mean and (population) standard deviation of each of the `width` columns of the row-major
/// `values`; a scale of zero (or not finite) becomes 1, and no rows give mean 0 and scale 1.
fn column_stats<T: Scalar>(values: &[T], width: usize) -> (Vec<f64>, Vec<f64>) {
    let n = values.len() / width.max(1);
    let mut mean = vec![0.0; width];
    for row in values.chunks_exact(width.max(1)) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v.to_f64();
        }
    }
    for m in &mut mean {
        *m /= n.max(1) as f64;
    }
    let mut var = vec![0.0; width];
    for row in values.chunks_exact(width.max(1)) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            let d = v.to_f64() - m;
            *s += d * d;
        }
    }
    let std = var
        .into_iter()
        .map(|s| {
            let sd = (s / n.max(1) as f64).sqrt();
            if sd > 0.0 && sd.is_finite() {
                sd
            } else {
                1.0
            }
        })
        .collect();
    (mean, std)
}

/// Checks statistics given to [`Standardizer::new`] or [`Standardizer::with_targets`].
fn check_stats(what: &str, mean: &[f64], std: &[f64]) -> Result<(), DataError> {
    if mean.is_empty() || mean.len() != std.len() {
        return Err(DataError::Statistics(format!(
            "{what}: {} means and {} standard deviations (the same number, at least 1, is needed)",
            mean.len(),
            std.len()
        )));
    }
    if let Some((i, m)) = mean.iter().enumerate().find(|(_, m)| !m.is_finite()) {
        return Err(DataError::Statistics(format!(
            "{what}: mean {i} is {m}, which is not finite"
        )));
    }
    if let Some((i, s)) = std
        .iter()
        .enumerate()
        .find(|(_, s)| !(s.is_finite() && **s > 0.0))
    {
        return Err(DataError::Statistics(format!(
            "{what}: standard deviation {i} is {s}, which is not positive and finite"
        )));
    }
    Ok(())
}

impl Standardizer {
    /// A standardizer of the features from known statistics (for example those of a model
    /// trained elsewhere), without target scaling.
    ///
    /// `mean` and `std` must have the same length, at least 1; every mean must be finite and
    /// every standard deviation positive and finite, else [`DataError::Statistics`].
    ///
    /// ```
    /// use symnet_runtime::data::Standardizer;
    /// let s = Standardizer::new(vec![2.0, -1.0], vec![4.0, 0.5])?;
    /// let mut x = [6.0f32, 0.0];
    /// s.apply_row(&mut x);
    /// assert_eq!(x, [1.0, 2.0]);
    /// assert!(Standardizer::new(vec![0.0], vec![0.0]).is_err());
    /// # Ok::<(), symnet_runtime::data::DataError>(())
    /// ```
    pub fn new(mean: Vec<f64>, std: Vec<f64>) -> Result<Self, DataError> {
        check_stats("features", &mean, &std)?;
        Ok(Self {
            mean,
            std,
            target: None,
        })
    }

    /// This standardizer, scaling the targets too with known statistics (replacing any it had),
    /// checked as by [`Standardizer::new`].
    ///
    /// ```
    /// use symnet_runtime::data::Standardizer;
    /// let s = Standardizer::new(vec![0.0], vec![1.0])?.with_targets(vec![100.0], vec![20.0])?;
    /// let mut y = [1.5f64];
    /// s.unscale_target(&mut y);
    /// assert_eq!(y, [130.0]);
    /// # Ok::<(), symnet_runtime::data::DataError>(())
    /// ```
    pub fn with_targets(self, mean: Vec<f64>, std: Vec<f64>) -> Result<Self, DataError> {
        check_stats("targets", &mean, &std)?;
        Ok(Self {
            target: Some((mean, std)),
            ..self
        })
    }

    /// The mean and (population) standard deviation of each feature of `data`; the targets are
    /// not scaled. A column whose standard deviation is zero (or not finite) gets a scale of 1.
    /// An empty data set gives mean 0 and scale 1.
    pub fn fit<T: Scalar>(data: &Dataset<T>) -> Self {
        let (mean, std) = column_stats(&data.x, data.inputs);
        Self {
            mean,
            std,
            target: None,
        }
    }

    /// Like [`Standardizer::fit`], fitting each target column as well: for regression, where a
    /// network learns best with targets of unit scale. [`Standardizer::transform`] then scales
    /// the targets, and [`Standardizer::unscale_target`] turns the network's outputs back into
    /// raw units.
    pub fn fit_with_targets<T: Scalar>(data: &Dataset<T>) -> Self {
        let s = Self::fit(data);
        Self {
            target: Some(column_stats(&data.y, data.outputs)),
            ..s
        }
    }

    /// The features' means.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The features' scales (standard deviations, 1 for constant columns).
    pub fn std(&self) -> &[f64] {
        &self.std
    }

    /// The targets' means, if the targets are scaled.
    pub fn target_mean(&self) -> Option<&[f64]> {
        self.target.as_ref().map(|(m, _)| m.as_slice())
    }

    /// The targets' scales, if the targets are scaled.
    pub fn target_std(&self) -> Option<&[f64]> {
        self.target.as_ref().map(|(_, s)| s.as_slice())
    }

    /// Standardizes one row of raw features in place.
    ///
    /// # Panics
    /// If the row's width differs from the fitted one.
    #[track_caller]
    pub fn apply_row<T: Scalar>(&self, x: &mut [T]) {
        assert_eq!(x.len(), self.mean.len(), "Standardizer: row width");
        for ((v, m), s) in x.iter_mut().zip(&self.mean).zip(&self.std) {
            *v = T::from_f64((v.to_f64() - m) / s);
        }
    }

    /// Standardizes one row of raw targets in place; nothing happens if the targets are not
    /// scaled.
    ///
    /// # Panics
    /// If the targets are scaled and the row's width differs from the fitted one.
    #[track_caller]
    pub fn apply_target_row<T: Scalar>(&self, y: &mut [T]) {
        if let Some((mean, std)) = &self.target {
            assert_eq!(y.len(), mean.len(), "Standardizer: target row width");
            for ((v, m), s) in y.iter_mut().zip(mean).zip(std) {
                *v = T::from_f64((v.to_f64() - m) / s);
            }
        }
    }

    /// Turns one row of standardized targets (a network's output) back into raw units in place,
    /// `v * std + mean`; nothing happens if the targets are not scaled, so that the same
    /// prediction code serves classifiers and regressions.
    ///
    /// # Panics
    /// If the targets are scaled and the row's width differs from the fitted one.
    #[track_caller]
    pub fn unscale_target<T: Scalar>(&self, y: &mut [T]) {
        if let Some((mean, std)) = &self.target {
            assert_eq!(y.len(), mean.len(), "Standardizer: target row width");
            for ((v, m), s) in y.iter_mut().zip(mean).zip(std) {
                *v = T::from_f64(v.to_f64() * s + m);
            }
        }
    }

    /// The network's output for one sample of raw features, in raw units: the features are
    /// standardized, the network applied, and its output unscaled (if the targets are scaled).
    ///
    /// ```
    /// # use symnet_macros::network;
    /// # use symnet_runtime as symnet;
    /// use symnet::data::{Dataset, Standardizer};
    /// network! {
    ///     pub struct Line<f64> { input: 1, out: dense(1), loss: mse }
    /// }
    /// let raw = Dataset::<f64>::new(vec![1.0, 3.0], vec![10.0, 30.0], 1, 1)?;
    /// let s = Standardizer::fit_with_targets(&raw);
    /// let mut net = Line::zeros();
    /// net.out.w = [[1.0]]; // y = x in standardized units
    /// assert_eq!(s.predict(&net, &[3.0]), vec![30.0]);
    /// # Ok::<(), symnet_runtime::data::DataError>(())
    /// ```
    ///
    /// # Panics
    /// If `x` is not `N::INPUTS` long, or the statistics do not have the network's widths.
    #[track_caller]
    pub fn predict<N: Network>(&self, net: &N, x: &[N::Scalar]) -> Vec<N::Scalar> {
        assert_eq!(x.len(), N::INPUTS, "Standardizer::predict: input width");
        let mut input = x.to_vec();
        self.apply_row(&mut input);
        let mut out = vec![N::Scalar::ZERO; N::OUTPUTS];
        net.forward_slice(&input, &mut out);
        self.unscale_target(&mut out);
        out
    }

    /// Standardizes the features of `data` in place, and its targets if they are scaled.
    ///
    /// # Panics
    /// If the data set's widths differ from the fitted ones.
    #[track_caller]
    pub fn apply<T: Scalar>(&self, data: &mut Dataset<T>) {
        assert_eq!(data.inputs, self.mean.len(), "Standardizer: input width");
        for row in data.x.chunks_exact_mut(data.inputs) {
            self.apply_row(row);
        }
        if let Some((mean, _)) = &self.target {
            assert_eq!(data.outputs, mean.len(), "Standardizer: target width");
            for row in data.y.chunks_exact_mut(data.outputs) {
                self.apply_target_row(row);
            }
        }
    }

    /// A standardized copy of `data` (see [`Standardizer::apply`]).
    #[track_caller]
    pub fn transform<T: Scalar>(&self, data: &Dataset<T>) -> Dataset<T> {
        let mut d = data.clone();
        self.apply(&mut d);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Writes `text` to a fresh file in the temp directory and returns its path.
    fn temp_csv(text: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "symnet-data-{}-{}.csv",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(text: &str, target: Target) -> (PathBuf, Result<Dataset<f64>, DataError>) {
        let path = temp_csv(text);
        let r = Dataset::from_csv(&path, target);
        std::fs::remove_file(&path).unwrap();
        (path, r)
    }

    #[test]
    fn loads_regression_classes_and_binary() {
        let (_, d) = load("a, b ,target\n1,2,3.5\n 4 ,5,6\n", Target::Regression);
        let d = d.unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.feature_names(), &["a", "b"]);
        assert_eq!(d.target_name(), "target");
        assert_eq!(d.x(1), &[4.0, 5.0]);
        assert_eq!(d.y(0), &[3.5]);

        let (_, d) = load("a,c\n0.5,2\n1,0\n", Target::Classes(3));
        let d = d.unwrap();
        assert_eq!(d.outputs(), 3);
        assert_eq!(d.ys(), &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);

        let (_, d) = load("a,c\n0.5,1\n1,0\n", Target::Binary);
        assert_eq!(d.unwrap().ys(), &[1.0, 0.0]);
    }

    #[test]
    fn missing_file() {
        let path = std::env::temp_dir().join("symnet-data-does-not-exist.csv");
        let e = Dataset::<f32>::from_csv(&path, Target::Regression).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("symnet-data-does-not-exist.csv"), "{msg}");
    }

    #[test]
    fn ragged_row() {
        let (path, e) = load("a,b,y\n1,2,3\n4,5\n", Target::Regression);
        match e.unwrap_err() {
            e @ DataError::Ragged {
                row: 2,
                expected: 3,
                found: 2,
                ..
            } => {
                let msg = e.to_string();
                assert!(msg.contains(&path.display().to_string()) && msg.contains("row 2"));
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn non_numeric_cell() {
        let (path, e) = load("a,b,y\n1,2,3\n4,five,6\n", Target::Regression);
        let e = e.unwrap_err();
        assert!(
            matches!(&e, DataError::NotNumeric { row: 2, column, value, .. } if column == "b" && value == "five"),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains(&path.display().to_string()));
        assert!(msg.contains("row 2, column `b`"), "{msg}");
        // Empty cells and NaN are not numbers either.
        let (_, e) = load("a,y\n,1\n", Target::Regression);
        assert!(matches!(
            e.unwrap_err(),
            DataError::NotNumeric { row: 1, .. }
        ));
        let (_, e) = load("a,y\nNaN,1\n", Target::Regression);
        assert!(matches!(
            e.unwrap_err(),
            DataError::NotNumeric { row: 1, .. }
        ));
    }

    #[test]
    fn empty_file() {
        for text in ["", "a,b,y\n"] {
            let (path, e) = load(text, Target::Regression);
            let e = e.unwrap_err();
            assert!(matches!(e, DataError::Empty { .. }), "{text:?}: {e:?}");
            assert!(e.to_string().contains(&path.display().to_string()));
        }
        let (_, e) = load("y\n1\n", Target::Regression);
        assert!(matches!(
            e.unwrap_err(),
            DataError::TooFewColumns { columns: 1, .. }
        ));
    }

    #[test]
    fn class_label_out_of_range() {
        let (_, e) = load("a,label\n1,0\n2,3\n", Target::Classes(3));
        let e = e.unwrap_err();
        assert!(
            matches!(&e, DataError::LabelOutOfRange { row: 2, column, classes: 3, .. } if column == "label"),
            "{e:?}"
        );
        assert!(e.to_string().contains("row 2, column `label`"));
        for bad in ["-1", "1.5"] {
            let (_, e) = load(&format!("a,label\n1,{bad}\n"), Target::Classes(3));
            assert!(matches!(
                e.unwrap_err(),
                DataError::LabelOutOfRange { row: 1, .. }
            ));
        }
        let (_, e) = load("a,label\n1,2\n", Target::Binary);
        assert!(matches!(
            e.unwrap_err(),
            DataError::LabelOutOfRange { classes: 2, .. }
        ));
    }

    #[test]
    fn split_is_seeded_and_partitions() {
        let d = Dataset::<f64>::new((0..20).map(f64::from).collect(), vec![0.0; 20], 1, 1).unwrap();
        let (a, b) = d.split(0.25, 3).unwrap();
        let (a2, b2) = d.split(0.25, 3).unwrap();
        assert_eq!((&a, &b), (&a2, &b2));
        assert_eq!((a.len(), b.len()), (15, 5));
        let mut all: Vec<f64> = a.xs().iter().chain(b.xs()).copied().collect();
        all.sort_by(f64::total_cmp);
        assert_eq!(all, d.xs());
        let (_, b3) = d.split(0.25, 4).unwrap();
        assert_ne!(b, b3);
        assert!(matches!(d.split(1.5, 0), Err(DataError::Fraction(_))));
    }

    #[test]
    fn standardizer_uses_training_statistics() {
        let train =
            Dataset::<f32>::new(vec![0.0, 7.0, 2.0, 7.0, 4.0, 7.0], vec![0.0; 3], 2, 1).unwrap();
        let test = Dataset::<f32>::new(vec![4.0, 8.0], vec![0.0], 2, 1).unwrap();
        let s = Standardizer::fit(&train);
        let sd = (8.0f64 / 3.0).sqrt();
        assert_eq!(s.mean(), &[2.0, 7.0]);
        assert!((s.std()[0] - sd).abs() < 1e-12 && s.std()[1] == 1.0);
        let t = s.transform(&test);
        assert!((t.x(0)[0] as f64 - 2.0 / sd).abs() < 1e-6);
        assert_eq!(t.x(0)[1], 1.0);
    }

    #[test]
    fn standardizer_scales_targets_when_fitted_with_them() {
        let train = Dataset::<f64>::new(vec![1.0, 0.0, 3.0, 0.0], vec![10.0, 5.0, 30.0, 5.0], 2, 2)
            .unwrap();
        // Features only: the targets are left alone, and unscaling is the identity.
        let s = Standardizer::fit(&train);
        assert_eq!((s.target_mean(), s.target_std()), (None, None));
        assert_eq!(s.transform(&train).ys(), train.ys());
        let mut y = [0.5, 2.0];
        s.unscale_target(&mut y);
        s.apply_target_row(&mut y);
        assert_eq!(y, [0.5, 2.0]);

        let s = Standardizer::fit_with_targets(&train);
        assert_eq!(s.mean(), &[2.0, 0.0]);
        assert_eq!(s.target_mean(), Some(&[20.0, 5.0][..]));
        assert_eq!(s.target_std(), Some(&[10.0, 1.0][..])); // a constant target: unscaled
        let t = s.transform(&train);
        assert_eq!(t.xs(), &[-1.0, 0.0, 1.0, 0.0]);
        assert_eq!(t.ys(), &[-1.0, 0.0, 1.0, 0.0]);
        let mut y = [1.0f32, 0.5];
        s.unscale_target(&mut y);
        assert_eq!(y, [30.0, 5.5]);
        s.apply_target_row(&mut y);
        assert_eq!(y, [1.0, 0.5]);
        // `fit` then `with_targets` is the same object.
        let built = Standardizer::fit(&train)
            .with_targets(vec![20.0, 5.0], vec![10.0, 1.0])
            .unwrap();
        assert_eq!(built, s);
    }

    #[test]
    fn standardizer_statistics_are_checked() {
        let s = Standardizer::new(vec![1.0, -2.0], vec![0.5, 4.0]).unwrap();
        assert_eq!((s.mean(), s.std()), (&[1.0, -2.0][..], &[0.5, 4.0][..]));
        let mut x = [2.0f64, 2.0];
        s.apply_row(&mut x);
        assert_eq!(x, [2.0, 1.0]);
        for (mean, std, what) in [
            (
                vec![0.0],
                vec![1.0, 1.0],
                "1 means and 2 standard deviations",
            ),
            (vec![], vec![], "0 means"),
            (vec![f64::NAN], vec![1.0], "mean 0 is NaN"),
            (vec![0.0, f64::INFINITY], vec![1.0, 1.0], "mean 1 is inf"),
            (vec![0.0], vec![0.0], "standard deviation 0 is 0"),
            (
                vec![0.0, 0.0],
                vec![1.0, -1.0],
                "standard deviation 1 is -1",
            ),
            (
                vec![0.0],
                vec![f64::INFINITY],
                "standard deviation 0 is inf",
            ),
        ] {
            let e = Standardizer::new(mean.clone(), std.clone()).unwrap_err();
            assert!(matches!(e, DataError::Statistics(_)), "{e:?}");
            assert!(e.to_string().contains(what), "{e}");
            let e = s.clone().with_targets(mean, std).unwrap_err();
            assert!(e.to_string().contains("targets: "), "{e}");
        }
    }

    #[test]
    #[should_panic(expected = "Standardizer: target width")]
    fn standardizer_checks_the_target_width() {
        let s = Standardizer::new(vec![0.0], vec![1.0])
            .unwrap()
            .with_targets(vec![0.0, 0.0], vec![1.0, 1.0])
            .unwrap();
        let d = Dataset::<f32>::new(vec![1.0], vec![1.0], 1, 1).unwrap();
        s.transform(&d);
    }

    fn read<T: Scalar>(text: &str, target: Target) -> Result<Dataset<T>, DataError> {
        Dataset::from_reader(text.as_bytes(), "mem.csv", target)
    }

    #[test]
    fn absurd_class_counts_are_errors_before_allocation() {
        for k in [usize::MAX, 1 << 40, MAX_WIDTH + 1] {
            let e = read::<f32>("a,c\n1,0\n", Target::Classes(k)).unwrap_err();
            assert!(
                matches!(e, DataError::TooManyClasses { classes, limit: MAX_WIDTH } if classes == k),
                "{e:?}"
            );
            assert!(e.to_string().contains("65536"), "{e}");
            // Checked before the file is opened.
            let missing = std::env::temp_dir().join("symnet-data-does-not-exist-either.csv");
            let e = Dataset::<f32>::from_csv(&missing, Target::Classes(k)).unwrap_err();
            assert!(matches!(e, DataError::TooManyClasses { .. }), "{e:?}");
        }
        assert!(matches!(
            read::<f32>("a,c\n1,0\n", Target::Classes(0)),
            Err(DataError::Shape(_))
        ));
        // The limit itself is allowed.
        let d = read::<f32>("a,c\n1,65535\n", Target::Classes(MAX_WIDTH)).unwrap();
        assert_eq!((d.outputs(), d.y(0)[MAX_WIDTH - 1]), (MAX_WIDTH, 1.0));
    }

    #[test]
    fn one_hot_rejects_absurd_class_counts() {
        assert!(matches!(
            one_hot::<f32>(&[usize::MAX - 1], usize::MAX),
            Err(DataError::TooManyClasses {
                classes: usize::MAX,
                limit: MAX_WIDTH
            })
        ));
        assert!(matches!(
            one_hot::<f64>(&[0], MAX_WIDTH + 1),
            Err(DataError::TooManyClasses { .. })
        ));
        assert!(matches!(one_hot::<f64>(&[], 0), Err(DataError::Shape(_))));
        assert!(matches!(one_hot::<f64>(&[0], 0), Err(DataError::Shape(_))));
        assert_eq!(one_hot::<f64>(&[], 3).unwrap(), Vec::<f64>::new());
        assert_eq!(one_hot::<f32>(&[1], MAX_WIDTH).unwrap()[1], 1.0);
    }

    #[test]
    fn values_that_overflow_the_scalar_type_are_not_numeric() {
        // 1e39 is a finite f64 but +inf as an f32: a feature ...
        let e = read::<f32>("a,b,y\n1,2,3\n4,1e39,6\n", Target::Regression).unwrap_err();
        assert!(
            matches!(&e, DataError::NotNumeric { row: 2, column, value, .. } if column == "b" && value == "1e39"),
            "{e:?}"
        );
        let e = read::<f32>("a,y\n-1e39,1\n", Target::Binary).unwrap_err();
        assert!(matches!(e, DataError::NotNumeric { row: 1, .. }), "{e:?}");
        // ... and a regression target.
        let e = read::<f32>("a,y\n1,-1e39\n", Target::Regression).unwrap_err();
        assert!(
            matches!(&e, DataError::NotNumeric { row: 1, column, .. } if column == "y"),
            "{e:?}"
        );
        // Fine in an f64 data set; tiny values underflow to zero, which is finite.
        let d = read::<f64>("a,y\n1e39,-1e39\n", Target::Regression).unwrap();
        assert_eq!((d.x(0)[0], d.y(0)[0]), (1e39, -1e39));
        let d = read::<f32>("a,y\n1e-50,0\n", Target::Regression).unwrap();
        assert_eq!(d.x(0)[0], 0.0);
        // A class label is checked against its range instead.
        let e = read::<f32>("a,y\n1,1e39\n", Target::Classes(3)).unwrap_err();
        assert!(matches!(e, DataError::LabelOutOfRange { .. }), "{e:?}");
        for bad in ["inf", "-infinity", "NaN", "1e400"] {
            let e = read::<f64>(&format!("a,y\n{bad},1\n"), Target::Regression).unwrap_err();
            assert!(matches!(e, DataError::NotNumeric { .. }), "{bad}: {e:?}");
        }
    }

    #[test]
    fn huge_cells_and_names_are_cut_in_errors() {
        let len = 10 << 20;
        let cell = "1234567890".repeat(len / 10) + "x";
        let e = read::<f32>(&format!("a,y\n{cell},1\n"), Target::Regression).unwrap_err();
        let DataError::NotNumeric { value, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(value, &format!("{}…({} bytes)", &cell[..64], len + 1));
        let msg = e.to_string();
        assert!(msg.len() < 300 && msg.contains("bytes)"), "{msg}");

        // A huge label, a huge column name, multi-byte characters cut at a boundary.
        let name = "é".repeat(1 << 20);
        let label = format!("-{}1", "0".repeat((1 << 20) - 2)); // -1, a million bytes long
        let e = read::<f32>(&format!("a,{name}\n1,{label}\n"), Target::Classes(3)).unwrap_err();
        let DataError::LabelOutOfRange { column, value, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(column, &format!("{}…(2097152 bytes)", "é".repeat(32)));
        assert_eq!(value, &format!("-{}…(1048576 bytes)", "0".repeat(63)));
        assert!(e.to_string().len() < 400);
        let e = read::<f32>(&format!("{name}x,y\nfive,1\n"), Target::Regression).unwrap_err();
        let DataError::NotNumeric { column, value, .. } = &e else {
            panic!("{e:?}")
        };
        // 64 bytes of 2-byte characters then `x`: cut inside the name at 64 bytes.
        assert_eq!(column, &format!("{}…(2097153 bytes)", "é".repeat(32)));
        assert_eq!(value, "five");
        // Exactly 64 bytes are kept whole; 65 are cut.
        let cut = |t: &str| excerpt(t, EXCERPT_BYTES);
        assert_eq!(cut(&"a".repeat(64)), "a".repeat(64));
        assert_eq!(
            cut(&"a".repeat(65)),
            format!("{}…(65 bytes)", "a".repeat(64))
        );
        let s = format!("{}é", "a".repeat(63));
        assert_eq!(cut(&s), format!("{}…(65 bytes)", "a".repeat(63)));
    }

    #[test]
    fn one_hot_and_shape_errors() {
        assert!(matches!(
            one_hot::<f64>(&[0, 4], 3),
            Err(DataError::OneHot {
                index: 1,
                label: 4,
                classes: 3
            })
        ));
        assert!(Dataset::<f64>::new(vec![1.0; 3], vec![1.0; 2], 2, 1).is_err());
        assert!(
            Dataset::<f64>::from_rows(&[vec![1.0], vec![1.0, 2.0]], &[vec![0.0], vec![0.0]])
                .is_err()
        );
    }
}
