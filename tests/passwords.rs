//! GetPasswordData: a Windows instance's password, encrypted with its RSA
//! key pair's public key, decrypts with the private key CreateKeyPair gave;
//! ed25519 key pairs are refused for Windows images; other instances have
//! none.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use ec2_gateway::client::text_of;
use ec2_gateway::config::StorageBackend;
use rsa::pkcs1::DecodeRsaPrivateKey;

const WINDOWS: &str = "ami-0f0e0d0c0b0a09080";
const LINUX: &str = "ami-0b1c2d3e4f5a6b7c8";

#[tokio::test]
async fn a_windows_password_decrypts_with_the_key_pair() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(
        &dir.path().join("data"),
        StorageBackend::Memory,
    ))
    .await;
    let created = server
        .user("CreateKeyPair", &[("KeyName", "admin"), ("KeyType", "rsa")])
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let pem = text_of(&created.body, "keyMaterial").unwrap();
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap();
    let launch = |image: &'static str, key: &'static str| {
        let server = &server;
        async move {
            server
                .user(
                    "RunInstances",
                    &[
                        ("ImageId", image),
                        ("InstanceType", "t3.micro"),
                        ("MinCount", "1"),
                        ("MaxCount", "1"),
                        ("KeyName", key),
                    ],
                )
                .await
        }
    };
    let windows = launch(WINDOWS, "admin").await;
    assert_eq!(windows.status, 200, "{}", windows.body);
    assert_eq!(text_of(&windows.body, "platform").unwrap(), "windows");
    let id = text_of(&windows.body, "instanceId").unwrap();
    wait_for(&server, &id, "running").await;
    let reply = server.user("GetPasswordData", &[("InstanceId", &id)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = text_of(&reply.body, "passwordData").unwrap();
    let password = private
        .decrypt(rsa::Pkcs1v15Encrypt, &STANDARD.decode(data.trim()).unwrap())
        .unwrap();
    assert_eq!(password.len(), 32);
    assert!(password.iter().all(|c| c.is_ascii_graphic()));
    // The same password on every call.
    let again = server.user("GetPasswordData", &[("InstanceId", &id)]).await;
    let again = text_of(&again.body, "passwordData").unwrap();
    let repeated = private
        .decrypt(
            rsa::Pkcs1v15Encrypt,
            &STANDARD.decode(again.trim()).unwrap(),
        )
        .unwrap();
    assert_eq!(repeated, password);

    // ed25519 cannot encrypt: refused for Windows, as EC2 does.
    let ed = server
        .user(
            "CreateKeyPair",
            &[("KeyName", "modern"), ("KeyType", "ed25519")],
        )
        .await;
    assert_eq!(ed.status, 200);
    let refused = launch(WINDOWS, "modern").await;
    assert_eq!(error_code(&refused), "InvalidParameterValue");
    // A Linux instance has no password: empty, as in EC2.
    let linux = launch(LINUX, "admin").await;
    let linux = text_of(&linux.body, "instanceId").unwrap();
    let none = server
        .user("GetPasswordData", &[("InstanceId", &linux)])
        .await;
    assert_eq!(none.status, 200, "{}", none.body);
    assert!(text_of(&none.body, "passwordData")
        .unwrap_or_default()
        .is_empty());
    // Another account: not found.
    let theirs = server
        .admin("GetPasswordData", &[("InstanceId", &id)])
        .await;
    assert_eq!(error_code(&theirs), "InvalidInstanceID.NotFound");
    server.stop().await;
}
