fn main() {
    let src = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let def = symnet_compiler::ast::parse(src.parse().unwrap()).unwrap();
    let net = symnet_compiler::check::check(def).unwrap();
    let c = symnet_compiler::compile(&net).unwrap();
    println!("{}", symnet_compiler::explain::explanation(&net, &c));
}
