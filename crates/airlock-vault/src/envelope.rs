//! Sealing, opening and rewrapping records, and the sealed record's compact
//! text form.
//!
//! A record is sealed as follows:
//!
//! 1. a fresh random 256-bit data key `dk` and two fresh 96-bit nonces are drawn;
//! 2. `ciphertext = AES-256-GCM(dk, n1, plaintext, aad = "airlock-vault/v1/data\0" + record_id)`;
//! 3. `wrapped = AES-256-GCM(master, n2, dk, aad = "airlock-vault/v1/key\0" + record_id)`.
//!
//! Both associated data strings bind the record id, so a sealed record copied
//! to another id fails to open, and the distinct prefixes keep the two
//! encryptions from being confused with each other.

use std::fmt;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::key::KEY_LEN;
use crate::{Keyring, MasterKey, VaultError};

/// Version tag that starts the text form produced by [`Sealed::encode`].
pub const SEALED_VERSION: &str = "v1";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;
const AAD_DATA: &[u8] = b"airlock-vault/v1/data\0";
const AAD_KEY: &[u8] = b"airlock-vault/v1/key\0";

/// A sealed secret: the id of the master key that wrapped its data key, the
/// wrapped data key and the ciphertext (each prefixed with its nonce).
///
/// Nothing in it is secret, but `Debug` shows only the key id and lengths.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the master key the data key is wrapped under.
    pub key_id: String,
    /// `nonce (12) || AES-256-GCM(master, data key) (32 + 16 tag)`.
    wrapped_key: Vec<u8>,
    /// `nonce (12) || AES-256-GCM(data key, plaintext) (len + 16 tag)`.
    ciphertext: Vec<u8>,
}

impl Sealed {
    /// Compact text form for a database `TEXT` column:
    ///
    /// `v1.<key_id>.<wrapped>.<ciphertext>`
    ///
    /// where `key_id` is the master key's 16 hex characters and the last two
    /// parts are URL-safe base64 without padding (RFC 4648 §5) of
    /// `nonce || encrypted data || tag`. The text contains only
    /// `[A-Za-z0-9._-]`.
    pub fn encode(&self) -> String {
        format!(
            "{SEALED_VERSION}.{}.{}.{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(&self.wrapped_key),
            URL_SAFE_NO_PAD.encode(&self.ciphertext)
        )
    }

    /// Parse the text form produced by [`Sealed::encode`].
    pub fn decode(text: &str) -> Result<Sealed, VaultError> {
        let malformed = |what: &str| VaultError::Malformed(what.to_owned());
        let mut parts = text.trim().split('.');
        let (Some(version), Some(key_id), Some(wrapped), Some(ciphertext), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed(
                "expected 4 dot-separated parts: v1.<key id>.<wrapped key>.<ciphertext>",
            ));
        };
        if version != SEALED_VERSION {
            return Err(VaultError::Malformed(format!(
                "unsupported format version {:?} (this build reads {SEALED_VERSION})",
                truncate(version, 8)
            )));
        }
        if key_id.len() != 16
            || !key_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(malformed("key id is not 16 lowercase hex characters"));
        }
        let wrapped_key = URL_SAFE_NO_PAD
            .decode(wrapped)
            .map_err(|_| malformed("wrapped key is not valid base64"))?;
        if wrapped_key.len() != WRAPPED_LEN {
            return Err(VaultError::Malformed(format!(
                "wrapped key is {} bytes, expected {WRAPPED_LEN}",
                wrapped_key.len()
            )));
        }
        let ciphertext = URL_SAFE_NO_PAD
            .decode(ciphertext)
            .map_err(|_| malformed("ciphertext is not valid base64"))?;
        if ciphertext.len() < NONCE_LEN + TAG_LEN {
            return Err(VaultError::Malformed(format!(
                "ciphertext is {} bytes, at least {} expected",
                ciphertext.len(),
                NONCE_LEN + TAG_LEN
            )));
        }
        Ok(Sealed {
            key_id: key_id.to_owned(),
            wrapped_key,
            ciphertext,
        })
    }

    /// Length in bytes of the plaintext this record holds.
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len().saturating_sub(NONCE_LEN + TAG_LEN)
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("plaintext_len", &self.plaintext_len())
            .finish_non_exhaustive()
    }
}

/// Seal `plaintext` for the record `record_id` under the keyring's current key.
pub fn seal(keyring: &Keyring, record_id: &str, plaintext: &[u8]) -> Result<Sealed, VaultError> {
    let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
    rand::rngs::OsRng.fill_bytes(data_key.as_mut());
    let ciphertext = encrypt(&data_key, AAD_DATA, record_id, plaintext)?;
    let master = keyring.current();
    let wrapped_key = encrypt(master.bytes(), AAD_KEY, record_id, data_key.as_ref())?;
    Ok(Sealed {
        key_id: master.id().to_owned(),
        wrapped_key,
        ciphertext,
    })
}

/// Open a record sealed for `record_id`. Fails with
/// [`VaultError::UnknownKey`] if its master key is not in the keyring and
/// [`VaultError::Decrypt`] if the key, record id or data do not match.
pub fn open(
    keyring: &Keyring,
    record_id: &str,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let data_key = unwrap_data_key(keyring, record_id, sealed)?;
    decrypt(&data_key, AAD_DATA, record_id, &sealed.ciphertext)
}

/// Re-wrap the record's data key under `keyring.current()`, leaving the
/// ciphertext unchanged. Errors if the record's key id is not in the keyring.
pub fn rewrap(keyring: &Keyring, record_id: &str, sealed: &Sealed) -> Result<Sealed, VaultError> {
    let data_key = unwrap_data_key(keyring, record_id, sealed)?;
    let master = keyring.current();
    let wrapped_key = encrypt(master.bytes(), AAD_KEY, record_id, data_key.as_ref())?;
    Ok(Sealed {
        key_id: master.id().to_owned(),
        wrapped_key,
        ciphertext: sealed.ciphertext.clone(),
    })
}

/// [`seal`] for a secret string.
pub fn seal_str(
    keyring: &Keyring,
    record_id: &str,
    secret: &SecretString,
) -> Result<Sealed, VaultError> {
    seal(keyring, record_id, secret.expose_secret().as_bytes())
}

/// [`open`] for a secret sealed with [`seal_str`]; fails with
/// [`VaultError::NotUtf8`] if the plaintext is not UTF-8.
pub fn open_str(
    keyring: &Keyring,
    record_id: &str,
    sealed: &Sealed,
) -> Result<SecretString, VaultError> {
    let bytes = open(keyring, record_id, sealed)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::NotUtf8)?;
    // Copy into a string of exactly the right capacity so that converting it
    // into a `SecretString` does not reallocate and leave a stray copy; the
    // `Zeroizing` buffer wipes the original when it drops.
    let mut owned = String::with_capacity(text.len());
    owned.push_str(text);
    Ok(SecretString::from(owned))
}

fn unwrap_data_key(
    keyring: &Keyring,
    record_id: &str,
    sealed: &Sealed,
) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    let master: &MasterKey = keyring
        .get(&sealed.key_id)
        .ok_or_else(|| VaultError::UnknownKey {
            key_id: sealed.key_id.clone(),
            known: keyring.ids(),
        })?;
    let raw = decrypt(master.bytes(), AAD_KEY, record_id, &sealed.wrapped_key)?;
    if raw.len() != KEY_LEN {
        return Err(VaultError::Decrypt);
    }
    let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
    data_key.copy_from_slice(&raw);
    Ok(data_key)
}

fn aad(prefix: &[u8], record_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(prefix.len() + record_id.len());
    aad.extend_from_slice(prefix);
    aad.extend_from_slice(record_id.as_bytes());
    aad
}

/// `nonce || AES-256-GCM(key, nonce, msg, aad)`.
fn encrypt(
    key: &[u8; KEY_LEN],
    prefix: &[u8],
    record_id: &str,
    msg: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = aad(prefix, record_id);
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad: &aad })
        .map_err(|_| VaultError::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn decrypt(
    key: &[u8; KEY_LEN],
    prefix: &[u8],
    record_id: &str,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if blob.len() < NONCE_LEN + TAG_LEN {
        return Err(VaultError::Decrypt);
    }
    let (nonce, msg) = blob.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.into());
    let aad = aad(prefix, record_id);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg, aad: &aad })
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Decrypt)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn round_trip() {
        let ring = Keyring::generate();
        let sealed = seal(&ring, "cred-1", SECRET).unwrap();
        assert_eq!(sealed.key_id, ring.current().id());
        assert_eq!(sealed.plaintext_len(), SECRET.len());
        assert_eq!(open(&ring, "cred-1", &sealed).unwrap().as_slice(), SECRET);

        let text = sealed.encode();
        assert!(text.starts_with(&format!("v1.{}.", ring.current().id())));
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        let decoded = Sealed::decode(&text).unwrap();
        assert_eq!(decoded, sealed);
        assert_eq!(open(&ring, "cred-1", &decoded).unwrap().as_slice(), SECRET);
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let ring = Keyring::generate();
        let sealed = Sealed::decode(&seal(&ring, "r", b"").unwrap().encode()).unwrap();
        assert!(open(&ring, "r", &sealed).unwrap().is_empty());
    }

    #[test]
    fn sealing_twice_gives_different_blobs() {
        let ring = Keyring::generate();
        let a = seal(&ring, "r", SECRET).unwrap().encode();
        let b = seal(&ring, "r", SECRET).unwrap().encode();
        assert_ne!(a, b);
    }

    #[test]
    fn str_helpers_round_trip() {
        let ring = Keyring::generate();
        let secret = SecretString::from("s3cr3t-value");
        let sealed = seal_str(&ring, "r", &secret).unwrap();
        assert_eq!(
            open_str(&ring, "r", &sealed).unwrap().expose_secret(),
            "s3cr3t-value"
        );
        let binary = seal(&ring, "r", &[0xff, 0xfe]).unwrap();
        assert!(matches!(
            open_str(&ring, "r", &binary),
            Err(VaultError::NotUtf8)
        ));
    }

    #[test]
    fn unknown_key_is_reported_with_ids() {
        let sealed = seal(&Keyring::generate(), "r", SECRET).unwrap();
        let other = Keyring::generate();
        let err = open(&other, "r", &sealed).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, VaultError::UnknownKey { key_id, known }
                if *key_id == sealed.key_id && *known == other.ids()),
            "{msg}"
        );
        assert!(msg.contains(&sealed.key_id) && msg.contains(other.current().id()));
    }

    #[test]
    fn wrong_key_with_same_id_fails_to_decrypt() {
        let ring = Keyring::generate();
        let mut sealed = seal(&ring, "r", SECRET).unwrap();
        // Pretend the record claims another key's id: the key it names does
        // not open it.
        let other = Keyring::generate();
        sealed.key_id = other.current().id().to_owned();
        assert!(matches!(
            open(&other, "r", &sealed),
            Err(VaultError::Decrypt)
        ));
    }

    #[test]
    fn record_id_swap_fails() {
        let ring = Keyring::generate();
        let sealed = seal(&ring, "instance-a/secret", SECRET).unwrap();
        assert!(matches!(
            open(&ring, "instance-b/secret", &sealed),
            Err(VaultError::Decrypt)
        ));
        assert!(matches!(
            rewrap(&ring, "instance-b/secret", &sealed),
            Err(VaultError::Decrypt)
        ));
    }

    #[test]
    fn tampering_fails() {
        let ring = Keyring::generate();
        let sealed = seal(&ring, "r", SECRET).unwrap();
        for i in 0..sealed.ciphertext.len() {
            let mut t = sealed.clone();
            t.ciphertext[i] ^= 0x01;
            assert!(matches!(open(&ring, "r", &t), Err(VaultError::Decrypt)));
        }
        for i in 0..sealed.wrapped_key.len() {
            let mut t = sealed.clone();
            t.wrapped_key[i] ^= 0x80;
            assert!(matches!(open(&ring, "r", &t), Err(VaultError::Decrypt)));
        }
        // Swapping ciphertexts between two records of the same id fails too.
        let other = seal(&ring, "r", b"other").unwrap();
        let mut mixed = sealed.clone();
        mixed.ciphertext = other.ciphertext;
        assert!(matches!(open(&ring, "r", &mixed), Err(VaultError::Decrypt)));
    }

    #[test]
    fn rewrap_then_open_with_only_the_new_key() {
        let old_ring = Keyring::generate();
        let sealed = seal(&old_ring, "r", SECRET).unwrap();
        let rotated = old_ring.with_current(MasterKey::generate());
        let rewrapped = rewrap(&rotated, "r", &sealed).unwrap();
        assert_eq!(rewrapped.key_id, rotated.current().id());
        assert_eq!(rewrapped.ciphertext, sealed.ciphertext, "ciphertext kept");
        assert_ne!(rewrapped.wrapped_key, sealed.wrapped_key);

        let new_only = rotated.only_current();
        assert_eq!(open(&new_only, "r", &rewrapped).unwrap().as_slice(), SECRET);
        assert!(matches!(
            open(&new_only, "r", &sealed),
            Err(VaultError::UnknownKey { .. })
        ));
        // The old key alone no longer opens the rewrapped record.
        assert!(matches!(
            open(&old_ring, "r", &rewrapped),
            Err(VaultError::UnknownKey { .. })
        ));
    }

    #[test]
    fn rewrap_with_unknown_key_fails() {
        let sealed = seal(&Keyring::generate(), "r", SECRET).unwrap();
        assert!(matches!(
            rewrap(&Keyring::generate(), "r", &sealed),
            Err(VaultError::UnknownKey { .. })
        ));
    }

    #[test]
    fn decode_rejects_malformed_text() {
        let ring = Keyring::generate();
        let good = seal(&ring, "r", SECRET).unwrap().encode();
        let parts: Vec<&str> = good.split('.').collect();
        let cases = [
            String::new(),
            "v1.abc".to_owned(),
            format!("v2.{}.{}.{}", parts[1], parts[2], parts[3]),
            format!("v1.XYZ.{}.{}", parts[2], parts[3]),
            format!("v1.{}.{}!.{}", parts[1], parts[2], parts[3]),
            format!("v1.{}.{}.{}", parts[1], &parts[2][4..], parts[3]),
            format!("v1.{}.{}.AAAA", parts[1], parts[2]),
            format!("{good}.extra"),
        ];
        for case in cases {
            let err = Sealed::decode(&case).unwrap_err();
            assert!(matches!(err, VaultError::Malformed(_)), "{case}: {err}");
        }
    }

    #[test]
    fn debug_and_errors_do_not_show_secrets() {
        let ring = Keyring::generate();
        let sealed = seal(&ring, "r", SECRET).unwrap();
        let dbg = format!("{sealed:?}");
        assert!(dbg.contains(&sealed.key_id));
        assert!(!dbg.contains(&URL_SAFE_NO_PAD.encode(&sealed.ciphertext)));
        let secret = SecretString::from("hunter2-secret");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
