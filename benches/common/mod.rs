//! Code shared by the benches (and, through `#[path]`, by `tests/handwritten.rs`).
#![allow(dead_code)]

pub mod handwritten;
pub mod shapes;
