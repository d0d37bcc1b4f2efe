#![allow(clippy::unwrap_used)]
#[path = "../../tessera-cli/src/license.rs"]
mod license;
#[path = "../../tessera-cli/src/output.rs"]
mod output;
use license::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = tessera_server::test_support::TestServer::spawn().await?;
    let key: serde_json::Value = reqwest::Client::new()
        .post(s.url("/admin/keys"))
        .bearer_auth(&s.admin_token)
        .json(&serde_json::json!({"product":"peregrine","tier":"paid","seats":2}))
        .send()
        .await?
        .json()
        .await?;
    let dir = tempfile::tempdir()?;
    let pk = dir.path().join("pub.pem");
    std::fs::write(&pk, &s.public_pem)?;
    let mk = |output| LicenseArgs {
        server_url: s.base_url.clone(),
        product: "peregrine".into(),
        public_key: pk.clone(),
        license_file: dir.path().join("license.json"),
        machine_id: None,
        timeout_secs: 2,
        output,
    };
    println!("--- status before");
    println!(
        "{:?}",
        run(mk(output::Output::Text), LicenseCommand::Status).await
    );
    println!("--- activate");
    run(
        mk(output::Output::Text),
        LicenseCommand::Activate {
            key: key["key_display"].as_str().unwrap().into(),
        },
    )
    .await?;
    println!("--- status json");
    run(mk(output::Output::Json), LicenseCommand::Status).await?;
    println!("--- refresh");
    run(mk(output::Output::Text), LicenseCommand::Refresh).await?;
    println!("--- file");
    println!(
        "{}",
        std::fs::read_to_string(dir.path().join("license.json"))?
    );
    s.clock.advance(86400 * 32);
    println!("--- status in grace");
    run(mk(output::Output::Text), LicenseCommand::Status).await?;
    s.clock.advance(86400 * 7);
    println!("--- status expired");
    println!(
        "{:?}",
        run(mk(output::Output::Text), LicenseCommand::Status).await
    );
    println!("--- deactivate");
    run(mk(output::Output::Json), LicenseCommand::Deactivate).await?;
    println!("--- refresh none");
    println!(
        "{:?}",
        run(mk(output::Output::Text), LicenseCommand::Refresh).await
    );
    let mut a = mk(output::Output::Text);
    a.server_url = "http://127.0.0.1:1".into();
    println!("--- activate refused");
    println!(
        "{:?}",
        run(a, LicenseCommand::Activate { key: "X".into() }).await
    );
    Ok(())
}
