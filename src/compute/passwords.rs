//! Windows administrator passwords for GetPasswordData.
//!
//! EC2 generates a Windows instance's password at launch and hands out only
//! the password encrypted with the RSA public key of the instance's key pair
//! (PKCS#1 v1.5, base64), which the owner decrypts with the private key EC2
//! gave them once; ed25519 key pairs are refused for Windows images, since
//! they cannot encrypt. The same here: the password is drawn and encrypted
//! at launch, and only the ciphertext is kept (with the instance, until it
//! terminates), so the gateway never stores the password itself.

use crate::error::{ApiError, ApiResult};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::Rng;
use rsa::Pkcs1v15Encrypt;

/// Password length and alphabet (letters, digits and the symbols EC2's
/// generated passwords use).
const LENGTH: usize = 32;
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!@#$%&*()-=+;?";

/// A new password, encrypted with the key pair's public key (OpenSSH form),
/// base64: what GetPasswordData returns.
pub fn encrypted_password(public_openssh: &str) -> ApiResult<String> {
    let public =
        ssh_key::PublicKey::from_openssh(public_openssh).map_err(|_| ApiError::InternalError)?;
    let ssh_key::public::KeyData::Rsa(rsa_public) = public.key_data() else {
        return Err(ed25519_refused());
    };
    let key = rsa::RsaPublicKey::try_from(rsa_public).map_err(|_| ApiError::InternalError)?;
    let mut rng = rand::thread_rng();
    let password: Vec<u8> = (0..LENGTH)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect();
    let cipher = key
        .encrypt(&mut rng, Pkcs1v15Encrypt, &password)
        .map_err(|_| ApiError::InternalError)?;
    Ok(STANDARD.encode(cipher))
}

/// EC2's refusal of an ed25519 key pair for a Windows image.
pub fn ed25519_refused() -> ApiError {
    ApiError::invalid_value(
        "ED25519 key pairs are not supported with Windows AMIs. Choose an RSA key pair.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_decrypts_with_the_private_key() {
        let mut rng = rand::thread_rng();
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let public = ssh_key::public::RsaPublicKey::try_from(private.to_public_key()).unwrap();
        let openssh = ssh_key::PublicKey::from(public).to_openssh().unwrap();
        let data = encrypted_password(&openssh).unwrap();
        let cipher = STANDARD.decode(data).unwrap();
        let password = private.decrypt(Pkcs1v15Encrypt, &cipher).unwrap();
        assert_eq!(password.len(), LENGTH);
        assert!(password.iter().all(|c| ALPHABET.contains(c)));
        // A second one differs.
        let other = STANDARD
            .decode(encrypted_password(&openssh).unwrap())
            .unwrap();
        assert_ne!(private.decrypt(Pkcs1v15Encrypt, &other).unwrap(), password);
    }
}
