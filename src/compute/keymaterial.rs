//! Key material: generating, importing and fingerprinting SSH keys as EC2 does.
//!
//! CreateKeyPair returns a real private key once: ed25519 (the default here)
//! in OpenSSH format, RSA 2048 as PKCS#1 PEM, or either as a PuTTY `.ppk`
//! (format 3, unencrypted). Fingerprints follow AWS: for ed25519 the base64
//! SHA-256 of the public key blob; for a created RSA key the SHA-1 of the
//! PKCS#8 DER private key; for an imported RSA key the MD5 of the DER public
//! key; both hex with colons. ImportKeyPair takes an OpenSSH public key
//! (`ssh-ed25519 AAAA...` or `ssh-rsa AAAA...`); anything else is
//! `InvalidKey.Format`.

use crate::error::{ApiError, ApiResult};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::Md5;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};

/// `KeyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Rsa,
    Ed25519,
}

impl KeyType {
    pub fn parse(value: &str) -> ApiResult<Self> {
        match value {
            "rsa" => Ok(KeyType::Rsa),
            "ed25519" => Ok(KeyType::Ed25519),
            other => Err(ApiError::invalid_value(format!(
                "Value ({other}) for parameter KeyType is invalid. Expected rsa or ed25519."
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

/// `KeyFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    Pem,
    Ppk,
}

impl KeyFormat {
    pub fn parse(value: &str) -> ApiResult<Self> {
        match value {
            "pem" => Ok(KeyFormat::Pem),
            "ppk" => Ok(KeyFormat::Ppk),
            other => Err(ApiError::invalid_value(format!(
                "Value ({other}) for parameter KeyFormat is invalid. Expected pem or ppk."
            ))),
        }
    }
}

/// A new key: the private material (shown once), the public key, its fingerprint.
pub struct GeneratedKey {
    pub private_material: crate::secret::Secret,
    pub public_openssh: String,
    pub fingerprint: String,
}

/// The public half of an imported key.
pub struct ImportedKey {
    pub key_type: KeyType,
    pub public_openssh: String,
    pub fingerprint: String,
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "key generation failed");
    ApiError::InternalError
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ed25519_fingerprint(public: &PublicKey) -> String {
    STANDARD.encode(public.fingerprint(HashAlg::Sha256).as_bytes())
}

/// Generates a key of `key_type`, rendered in `format`, commented `name`.
pub fn generate(key_type: KeyType, format: KeyFormat, name: &str) -> ApiResult<GeneratedKey> {
    let mut rng = rand::rngs::OsRng;
    // RSA keys are made with the rsa crate and converted to ssh-key's type
    // (ssh-key 0.6.7's conversion the other way round is broken).
    let (private, rsa_key) = match key_type {
        KeyType::Ed25519 => (
            PrivateKey::random(&mut rng, Algorithm::Ed25519).map_err(internal)?,
            None,
        ),
        KeyType::Rsa => {
            let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(internal)?;
            let keypair = RsaKeypair::try_from(&rsa_key).map_err(internal)?;
            (
                PrivateKey::new(KeypairData::Rsa(keypair), name).map_err(internal)?,
                Some(rsa_key),
            )
        }
    };
    let public = private.public_key().clone();
    let public_openssh = public.to_openssh().map_err(internal)?;
    let (pem, fingerprint) = match rsa_key {
        None => {
            let mut private = private.clone();
            private.set_comment(name);
            (
                private
                    .to_openssh(LineEnding::LF)
                    .map_err(internal)?
                    .to_string(),
                ed25519_fingerprint(&public),
            )
        }
        Some(rsa_key) => {
            let pkcs8 = rsa_key.to_pkcs8_der().map_err(internal)?;
            let pem = rsa_key
                .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .map_err(internal)?
                .to_string();
            (pem, colon_hex(&Sha1::digest(pkcs8.as_bytes())))
        }
    };
    let material = match format {
        KeyFormat::Pem => pem,
        KeyFormat::Ppk => ppk(&private, name)?,
    };
    Ok(GeneratedKey {
        private_material: crate::secret::Secret::new(material),
        public_openssh,
        fingerprint,
    })
}

/// Parses an OpenSSH public key line (what `ssh-keygen` writes to `.pub`).
pub fn import(material: &[u8]) -> ApiResult<ImportedKey> {
    let invalid = || ApiError::Malformed {
        code: crate::error::codes::INVALID_KEY_FORMAT,
        message: "Key is not in valid OpenSSH public key format".into(),
    };
    let text = std::str::from_utf8(material).map_err(|_| invalid())?.trim();
    let public = PublicKey::from_openssh(text).map_err(|_| invalid())?;
    let public_openssh = public.to_openssh().map_err(|_| invalid())?;
    match public.key_data() {
        ssh_key::public::KeyData::Ed25519(_) => Ok(ImportedKey {
            key_type: KeyType::Ed25519,
            fingerprint: ed25519_fingerprint(&public),
            public_openssh,
        }),
        ssh_key::public::KeyData::Rsa(rsa_public) => {
            let key = rsa::RsaPublicKey::try_from(rsa_public).map_err(|_| invalid())?;
            let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
            if !(1024..=4096).contains(&bits) {
                return Err(ApiError::Malformed {
                    code: crate::error::codes::INVALID_KEY_FORMAT,
                    message: format!("RSA keys must have 1024 to 4096 bits, not {bits}"),
                });
            }
            let der = key.to_public_key_der().map_err(|_| invalid())?;
            Ok(ImportedKey {
                key_type: KeyType::Rsa,
                fingerprint: colon_hex(&Md5::digest(der.as_bytes())),
                public_openssh,
            })
        }
        _ => Err(ApiError::Malformed {
            code: crate::error::codes::INVALID_KEY_FORMAT,
            message: "Only ssh-rsa and ssh-ed25519 public keys can be imported".into(),
        }),
    }
}

/// SSH wire `string`: length-prefixed bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// SSH wire `mpint` from big-endian magnitude bytes.
fn put_mpint(out: &mut Vec<u8>, big_endian: &[u8]) {
    let trimmed: &[u8] = {
        let start = big_endian
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(big_endian.len());
        &big_endian[start..]
    };
    let mut bytes = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        bytes.push(0);
    }
    bytes.extend_from_slice(trimmed);
    put_string(out, &bytes);
}

fn base64_lines(bytes: &[u8]) -> Vec<String> {
    let encoded = STANDARD.encode(bytes);
    encoded
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

/// PuTTY private key file, format 3, unencrypted.
fn ppk(private: &PrivateKey, comment: &str) -> ApiResult<String> {
    let algorithm = private.algorithm().as_str().to_string();
    let public_blob = private.public_key().to_bytes().map_err(internal)?;
    let mut private_blob = Vec::new();
    match private.key_data() {
        KeypairData::Ed25519(keypair) => {
            // PuTTY keeps the 32-byte seed as an mpint read little-endian.
            let mut seed = keypair.private.to_bytes();
            seed.reverse();
            put_mpint(&mut private_blob, &seed);
        }
        KeypairData::Rsa(keypair) => {
            put_mpint(
                &mut private_blob,
                keypair
                    .private
                    .d
                    .as_positive_bytes()
                    .ok_or(ApiError::InternalError)?,
            );
            put_mpint(
                &mut private_blob,
                keypair
                    .private
                    .p
                    .as_positive_bytes()
                    .ok_or(ApiError::InternalError)?,
            );
            put_mpint(
                &mut private_blob,
                keypair
                    .private
                    .q
                    .as_positive_bytes()
                    .ok_or(ApiError::InternalError)?,
            );
            put_mpint(
                &mut private_blob,
                keypair
                    .private
                    .iqmp
                    .as_positive_bytes()
                    .ok_or(ApiError::InternalError)?,
            );
        }
        _ => return Err(ApiError::InternalError),
    }
    let mut mac_input = Vec::new();
    put_string(&mut mac_input, algorithm.as_bytes());
    put_string(&mut mac_input, b"none");
    put_string(&mut mac_input, comment.as_bytes());
    put_string(&mut mac_input, &public_blob);
    put_string(&mut mac_input, &private_blob);
    // Unencrypted format-3 files are MACed with an empty key.
    let mut mac = Hmac::<Sha256>::new_from_slice(&[]).expect("any key length");
    mac.update(&mac_input);
    let public_lines = base64_lines(&public_blob);
    let private_lines = base64_lines(&private_blob);
    let mut out = format!("PuTTY-User-Key-File-3: {algorithm}\nEncryption: none\nComment: {comment}\nPublic-Lines: {}\n", public_lines.len());
    for line in public_lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!("Private-Lines: {}\n", private_lines.len()));
    for line in private_lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!(
        "Private-MAC: {}\n",
        hex::encode(mac.finalize().into_bytes())
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_keys_round_trip() {
        let key = generate(KeyType::Ed25519, KeyFormat::Pem, "k").unwrap();
        assert!(key
            .private_material
            .expose()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let parsed = PrivateKey::from_openssh(key.private_material.expose()).unwrap();
        assert_eq!(
            parsed.public_key().key_data(),
            PublicKey::from_openssh(&key.public_openssh)
                .unwrap()
                .key_data()
        );
        let imported = import(key.public_openssh.as_bytes()).unwrap();
        assert_eq!(
            (imported.key_type, imported.fingerprint),
            (KeyType::Ed25519, key.fingerprint.clone())
        );
        assert_eq!(key.fingerprint.len(), 44, "base64 of 32 bytes");
    }

    #[test]
    fn rsa_keys_are_pkcs1_pem() {
        let key = generate(KeyType::Rsa, KeyFormat::Pem, "k").unwrap();
        assert!(key
            .private_material
            .expose()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert_eq!(key.fingerprint.len(), 59, "SHA-1, colon-separated hex");
        let imported = import(key.public_openssh.as_bytes()).unwrap();
        assert_eq!(imported.key_type, KeyType::Rsa);
        assert_eq!(imported.fingerprint.len(), 47, "MD5, colon-separated hex");
    }

    #[test]
    fn bad_material_is_invalid_key_format() {
        for bad in [
            &b"not a key"[..],
            b"ssh-ed25519 AAAA",
            b"\xff\xfe",
            b"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEVP",
        ] {
            assert_eq!(
                import(bad).err().map(|e| e.code()),
                Some("InvalidKey.Format")
            );
        }
    }

    #[test]
    fn mpints() {
        let mut out = Vec::new();
        put_mpint(&mut out, &[0, 0, 0x80, 1]);
        assert_eq!(out, [0, 0, 0, 3, 0, 0x80, 1]);
    }
}

#[cfg(test)]
mod putty_check {
    use super::*;

    /// PuTTY's own tool must read our .ppk files and find the same public key.
    #[test]
    fn puttygen_reads_our_ppk_files() {
        if std::process::Command::new("puttygen")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("EC2_GATEWAY_E2E_REQUIRED").is_err(),
                "puttygen (putty-tools) is required"
            );
            println!("SKIPPED: puttygen is not installed");
            return;
        }
        for key_type in [KeyType::Ed25519, KeyType::Rsa] {
            let key = generate(key_type, KeyFormat::Ppk, "gateway-key").unwrap();
            let dir = std::env::temp_dir().join(format!(
                "ppk-{}-{}",
                std::process::id(),
                key_type.as_str()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("key.ppk");
            std::fs::write(&path, key.private_material.expose()).unwrap();
            let output = std::process::Command::new("puttygen")
                .arg(&path)
                .args(["-O", "public-openssh"])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{key_type:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let public = String::from_utf8(output.stdout).unwrap();
            let expected = key
                .public_openssh
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                public.starts_with(&expected),
                "{key_type:?}: {public} vs {expected}"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
