//! Seeded corruption tests of the loaders of files a user can hand over: CSV data sets and
//! safetensors weights files.
//!
//! Each test starts from a valid file and applies a few random mutations per case (truncation,
//! bit flips, random bytes, spliced, inserted, duplicated or deleted ranges, tokens that matter
//! to the format, a huge cell, a rewritten header length). Every case must end in `Ok` or in a
//! typed error with a short message, never in a panic; a panic is reported with the seed and the
//! case index, which reproduce it. `SYMNET_CORRUPTION_CASES=n` runs `n` cases instead of 2000.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use symnet_runtime::data::{DataError, Dataset, Target};
use symnet_runtime::io::{self, LoadOptions, WeightsError};
use symnet_runtime::{Network, Scalar, SplitMix64};

const SEED: u64 = 0x5eed;
const DEFAULT_CASES: u64 = 2000;

/// The longest error message allowed (plus the path): messages quote files only in excerpts.
const MAX_MESSAGE: usize = 2048;

fn cases() -> u64 {
    std::env::var("SYMNET_CORRUPTION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The random generator of one case: fixed by the seed and the case index.
fn case_rng(case: u64) -> SplitMix64 {
    let mut r = SplitMix64::new(SEED ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    r.next_u64();
    r
}

/// A position in `0..=len`.
fn pos(r: &mut SplitMix64, len: usize) -> usize {
    r.below(len + 1)
}

fn random_bytes(r: &mut SplitMix64, n: usize) -> Vec<u8> {
    (0..n).map(|_| r.next_u64() as u8).collect()
}

/// One random mutation of `b` that applies to any format; `tokens` are byte strings that
/// matter to the format.
fn mutate_bytes(r: &mut SplitMix64, b: &mut Vec<u8>, tokens: &[&[u8]]) {
    let len = b.len();
    match r.below(8) {
        // Truncate.
        0 => b.truncate(pos(r, len)),
        // Flip 1 to 8 random bits.
        1 if len > 0 => {
            for _ in 0..1 + r.below(8) {
                let i = r.below(len);
                b[i] ^= 1 << r.below(8);
            }
        }
        // Overwrite 1 to 4 random bytes.
        2 if len > 0 => {
            for _ in 0..1 + r.below(4) {
                let i = r.below(len);
                b[i] = r.next_u64() as u8;
            }
        }
        // Splice a chunk from elsewhere over a random position.
        3 if len > 0 => {
            let (from, to) = (r.below(len), r.below(len));
            let n = (1 + r.below(32)).min(len - from).min(len - to);
            let chunk = b[from..from + n].to_vec();
            b[to..to + n].copy_from_slice(&chunk);
        }
        // Insert 1 to 16 random bytes.
        4 => {
            let at = pos(r, len);
            let n = 1 + r.below(16);
            let ins = random_bytes(r, n);
            b.splice(at..at, ins);
        }
        // Duplicate a range in place.
        5 if len > 0 => {
            let from = r.below(len);
            let n = (1 + r.below(64)).min(len - from);
            let chunk = b[from..from + n].to_vec();
            b.splice(from + n..from + n, chunk);
        }
        // Delete a range.
        6 if len > 0 => {
            let from = r.below(len);
            let n = (1 + r.below(16)).min(len - from);
            b.drain(from..from + n);
        }
        // Insert a token of the format.
        _ => {
            let at = pos(r, len);
            let t = tokens[r.below(tokens.len())];
            b.splice(at..at, t.iter().copied());
        }
    }
}

/// Runs `load` on `cases()` mutations of `base` made by `mutate`; fails listing every case that
/// panicked (in a loader, or in a check of what it returned).
fn run_cases(
    what: &str,
    base: &[u8],
    mutate: impl Fn(&mut SplitMix64, &mut Vec<u8>),
    load: impl Fn(&[u8]) -> Outcome,
) {
    let n = cases();
    let (mut ok, mut errors, mut panicked) = (0u64, BTreeMap::new(), Vec::new());
    for case in 0..n {
        let mut r = case_rng(case);
        let mut bytes = base.to_vec();
        for _ in 0..1 + r.below(3) {
            mutate(&mut r, &mut bytes);
        }
        match catch_unwind(AssertUnwindSafe(|| load(&bytes))) {
            Ok(outcome) => {
                ok += outcome.ok;
                for (kind, count) in outcome.errors {
                    *errors.entry(kind).or_insert(0u64) += count;
                }
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panicked.push(format!("case {case}: {msg}"));
            }
        }
    }
    let kinds: Vec<String> = errors.iter().map(|(k, c)| format!("{k} {c}")).collect();
    println!(
        "{what}: seed {SEED:#x}, {n} cases: {ok} loads succeeded, {} typed errors ({}), {} panics",
        errors.values().sum::<u64>(),
        kinds.join(", "),
        panicked.len()
    );
    assert!(
        panicked.is_empty(),
        "{what}: seed {SEED:#x}: {} of {n} cases panicked:\n{}",
        panicked.len(),
        panicked.join("\n")
    );
}

/// How the loads of one case ended (each case may run several loaders): the successes, and
/// the errors by variant.
#[derive(Default)]
struct Outcome {
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl Outcome {
    /// Counts `r`; an error must have a short message.
    fn add<T, E: std::error::Error>(&mut self, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => {
                self.ok += 1;
                Some(v)
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.len() <= MAX_MESSAGE,
                    "an error message of {} bytes: {}…",
                    msg.len(),
                    msg.chars().take(200).collect::<String>()
                );
                let debug = format!("{e:?}");
                let kind = debug
                    .split(|c: char| !c.is_alphanumeric())
                    .next()
                    .unwrap_or_default();
                *self.errors.entry(kind.to_owned()).or_insert(0) += 1;
                None
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

const IRIS: &str = "\
sepal_length,sepal_width,petal_length,petal_width,species
5.1,3.5,1.4,0.2,0
4.9,3.0,1.4,0.2,0
4.7,3.2,1.3,0.2,0
7.0,3.2,4.7,1.4,1
6.4,3.2,4.5,1.5,1
6.9,3.1,4.9,1.5,1
6.3,3.3,6.0,2.5,2
5.8,2.7,5.1,1.9,2
7.1,3.0,5.9,2.1,2
";

const CSV_TOKENS: &[&[u8]] = &[
    b",",
    b"\n",
    b"\r\n",
    b"\"",
    b" ",
    b"NaN",
    b"inf",
    b"-",
    b"1e39",
    b"-1e39",
    b"1e400",
    b"0x10",
    b"3",
    b"2.5",
    b"-1",
    b"\xff",
    b"\xc3",
    b"\0",
    "é".as_bytes(),
];

fn mutate_csv(r: &mut SplitMix64, b: &mut Vec<u8>) {
    if r.below(20) == 0 {
        // A huge cell: up to 256 KiB of digits (sometimes not a number), at a random position.
        let n = 1 + r.below(256 << 10);
        let at = pos(r, b.len());
        let mut cell = vec![b'7'; n];
        if r.below(2) == 0 {
            cell[n / 2] = b'x';
        }
        b.splice(at..at, cell);
    } else {
        mutate_bytes(r, b, CSV_TOKENS);
    }
}

/// Checks what a successful load must satisfy.
fn check_dataset(d: &Dataset<f32>, target: Target) {
    assert!(!d.is_empty());
    assert_eq!(d.xs().len(), d.len() * d.inputs());
    assert_eq!(d.ys().len(), d.len() * d.outputs());
    assert_eq!(d.feature_names().len(), d.inputs());
    assert!(d.xs().iter().chain(d.ys()).all(|v| v.is_finite()));
    match target {
        Target::Classes(k) => {
            assert_eq!(d.outputs(), k);
            for i in 0..d.len() {
                let y = d.y(i);
                assert_eq!(y.iter().filter(|&&v| v == 1.0).count(), 1);
                assert_eq!(y.iter().filter(|&&v| v == 0.0).count(), k - 1);
            }
        }
        Target::Binary => assert!(d.ys().iter().all(|&v| v == 0.0 || v == 1.0)),
        Target::Regression => assert_eq!(d.outputs(), 1),
    }
}

fn load_csv(bytes: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    for target in [Target::Regression, Target::Classes(3), Target::Binary] {
        let r: Result<Dataset<f32>, DataError> = Dataset::from_reader(bytes, "corrupt.csv", target);
        if let Some(d) = out.add(r) {
            check_dataset(&d, target);
        }
    }
    out
}

#[test]
fn the_csv_base_file_is_valid() {
    for target in [Target::Regression, Target::Classes(3)] {
        let d = Dataset::<f32>::from_reader(IRIS.as_bytes(), "iris.csv", target).unwrap();
        assert_eq!((d.len(), d.inputs()), (9, 4));
        check_dataset(&d, target);
    }
}

#[test]
fn csv_corruption_seed_0x5eed_2000_cases() {
    run_cases(
        "CSV (regression, 3 classes, binary)",
        IRIS.as_bytes(),
        mutate_csv,
        load_csv,
    );
}

// ---------------------------------------------------------------------------------------------
// safetensors

/// A hand-written network of 3 inputs, `hidden: dense(4)` and `out: dense(2)`: 26 parameters,
/// enough of `Network` for weights files.
#[derive(Clone, Debug, PartialEq)]
struct Small<T>(Vec<T>);

impl<T: Scalar> Network for Small<T> {
    type Scalar = T;
    const INPUTS: usize = 3;
    const OUTPUTS: usize = 2;
    const PARAMS: usize = 26;
    fn zeros() -> Self {
        Self(vec![T::ZERO; 26])
    }
    fn init(seed: u64) -> Self {
        let mut r = SplitMix64::new(seed);
        Self((0..26).map(|_| T::from_f64(r.uniform(-1.0, 1.0))).collect())
    }
    fn params(&self) -> &[T] {
        &self.0
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
    fn tensors() -> &'static [(&'static str, &'static [usize])] {
        &[
            ("hidden.w", &[4, 3]),
            ("hidden.b", &[4]),
            ("out.w", &[2, 4]),
            ("out.b", &[2]),
        ]
    }
    fn forward_slice(&self, _: &[T], _: &mut [T]) {}
    fn loss_slice(&self, _: &[T], _: &[T]) -> T {
        T::ZERO
    }
    fn backward_slice(&self, _: &[T], _: &[T], _: T, _: &mut Self) -> T {
        T::ZERO
    }
}

const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"\\",
    b"0",
    b"-1",
    b"1e30",
    b"18446744073709551615",
    b"4294967296",
    b"null",
    b"\"data_offsets\":[0,4]",
    b"\"shape\":[]",
    b"\"dtype\":\"F64\"",
    b"\"dtype\":\"BOOL\"",
    b"\"__metadata__\":{\"a\":\"b\"},",
    b"\"out.b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[96,104]},",
    b"\xff",
];

/// Writes `len` as the 8-byte header length.
fn set_header_len(b: &mut [u8], len: u64) {
    if b.len() >= 8 {
        b[..8].copy_from_slice(&len.to_le_bytes());
    }
}

fn mutate_safetensors(r: &mut SplitMix64, b: &mut Vec<u8>) {
    let header_len = b
        .get(..8)
        .map_or(0, |l| u64::from_le_bytes(l.try_into().unwrap()));
    match r.below(10) {
        // The header length: huge, around the limit, small, or off by a little.
        0 => {
            let len = match r.below(6) {
                0 => u64::MAX - r.below(16) as u64,
                1 => 1 << (32 + r.below(31)),
                2 => 100_000_000 + r.below(3) as u64 - 1,
                3 => r.below(16) as u64,
                4 => header_len.wrapping_add(r.below(17) as u64).wrapping_sub(8),
                _ => r.below(b.len() + 1) as u64,
            };
            set_header_len(b, len);
        }
        // A mutation inside the JSON header, then the length fixed up to match.
        1..=3 if b.len() >= 8 && header_len as usize <= b.len() - 8 => {
            let h = header_len as usize;
            let mut header = b[8..8 + h].to_vec();
            mutate_bytes(r, &mut header, JSON_TOKENS);
            let data = b[8 + h..].to_vec();
            b.truncate(8);
            set_header_len(b, header.len() as u64);
            b.extend(header);
            b.extend(data);
        }
        // A special value written over 4 bytes of the data section (after the header).
        4 if (header_len as usize)
            .checked_add(12)
            .is_some_and(|end| end <= b.len()) =>
        {
            let start = 8 + header_len as usize;
            let at = start + r.below(b.len() - start - 3);
            let v = [
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::MAX,
                -0.0,
                1e-45,
            ];
            b[at..at + 4].copy_from_slice(&v[r.below(v.len())].to_le_bytes());
        }
        _ => mutate_bytes(r, b, JSON_TOKENS),
    }
}

fn load_weights_bytes(bytes: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    if let Some(net) = out.add(io::from_bytes::<Small<f32>>(bytes)) {
        assert!(net.params().iter().all(|v| v.is_finite()));
    }
    let allow = LoadOptions {
        allow_non_finite: true,
    };
    out.add(io::from_bytes_with::<Small<f32>>(bytes, &allow));
    let r: Result<Small<f64>, WeightsError> = io::from_bytes(bytes);
    out.add(r);
    out
}

#[test]
fn the_safetensors_base_file_is_valid() {
    let net = Small::<f32>::init(7);
    let bytes = io::to_bytes(&net).unwrap();
    assert_eq!(io::from_bytes::<Small<f32>>(&bytes).unwrap(), net);
}

#[test]
fn safetensors_corruption_seed_0x5eed_2000_cases() {
    let base = io::to_bytes(&Small::<f32>::init(7)).unwrap();
    run_cases(
        "safetensors (f32 network, allowing non-finite, f64 network)",
        &base,
        mutate_safetensors,
        load_weights_bytes,
    );
}
