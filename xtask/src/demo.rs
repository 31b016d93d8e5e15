//! `cargo xtask demo`: the seed scenario on the local control plane.

use anyhow::Result;
use testenv::SHARED_INSTANCE;

pub async fn run() -> Result<()> {
    let cluster = testenv::cluster::up(SHARED_INSTANCE).await?;
    for args in [
        vec!["get", "nodes", "-o", "wide"],
        vec!["get", "apiservices"],
    ] {
        println!("$ kubectl {}", args.join(" "));
        let out = testenv::kubectl(&cluster, &args);
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    println!("\nThe cluster keeps running. Use it with: eval \"$(cargo xtask cluster env)\"");
    println!("Stop it with: cargo xtask cluster down");
    Ok(())
}
