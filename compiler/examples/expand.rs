//! Prints the expansion of a `network!` body read from a file (or stdin), for reading what the
//! compiler generates: `cargo run -p symnet-compiler --example expand -- net.txt | rustfmt`.

use std::io::Read;

fn main() {
    let mut src = String::new();
    match std::env::args().nth(1) {
        Some(path) => src = std::fs::read_to_string(path).expect("readable file"),
        None => {
            std::io::stdin().read_to_string(&mut src).expect("stdin");
        }
    }
    let tokens: proc_macro2::TokenStream = src.parse().expect("tokens");
    let start = std::time::Instant::now();
    let out = symnet_compiler::expand(tokens.clone());
    if std::env::var_os("SYMNET_REPORT").is_some() {
        let def = symnet_compiler::ast::parse(tokens).expect("parses");
        let net = symnet_compiler::check::check(def).expect("checks");
        let c = symnet_compiler::compile(&net).expect("compiles");
        eprintln!("forward: {:?}", c.forward_report);
        eprintln!("backward: {:?}", c.backward_report);
        eprintln!("loss term: {}", c.loss.term(c.loss.roots[0]));
    }
    eprintln!("expanded in {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    println!("{out}");
}
