fn main() {
    println!("rvswitch");
}
