use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    for mb in [16usize, 64, 256, 1024] {
        let t = Instant::now();
        let db =
            redb::Database::builder().set_check_integrity_on_open(true).set_cache_size(mb << 20).create(&path).unwrap();
        let open = t.elapsed();
        drop(db);
        println!("cache {mb} MB: open {open:?}");
    }
}
