//! Master keys and the keyring that holds them, with the keyring's text form
//! (used by the master key file and the `AIRLOCK_MASTER_KEY` variable).

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use rand::RngCore as _;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::VaultError;

/// Length of a master key in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// Standard base64 alphabet that accepts keys with or without `=` padding.
const KEY_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A 256-bit master key. The bytes are zeroized on drop; `Debug` shows only
/// the key's id.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: String,
}

impl MasterKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self::from_zeroizing(bytes)
    }

    /// A key from raw bytes (the caller should zeroize its own copy).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self::from_zeroizing(Zeroizing::new(bytes))
    }

    fn from_zeroizing(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let digest = Sha256::digest(bytes.as_ref());
        let id = hex::encode(digest.get(..8).unwrap_or_default());
        Self { bytes, id }
    }

    /// The key's id: the first 8 bytes of SHA-256 of the key, as 16 lowercase
    /// hex characters. Safe to log and store.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

impl PartialEq for MasterKey {
    /// Keys are equal when their ids are (ids are derived from the bytes).
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for MasterKey {}

/// A non-empty list of master keys. The first is the current key, used to
/// seal and wrap; the others can only open records sealed under them.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring holding one key.
    pub fn new(current: MasterKey) -> Self {
        Self {
            keys: vec![current],
        }
    }

    /// A keyring holding one freshly generated key.
    pub fn generate() -> Self {
        Self::new(MasterKey::generate())
    }

    /// Parse the keyring text form: one standard-base64 32-byte key per line,
    /// or several separated by commas, current key first. Blank lines and
    /// lines starting with `#` are ignored; surrounding whitespace is
    /// ignored; a key listed twice is kept once, at its first position.
    ///
    /// Errors name the line and what is wrong, never the key text.
    pub fn parse(text: &str) -> Result<Keyring, VaultError> {
        let mut keys: Vec<MasterKey> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let entries: Vec<&str> = trimmed.split(',').map(str::trim).collect();
            let several = entries.len() > 1;
            for (pos, entry) in entries.into_iter().enumerate() {
                let which = if several {
                    format!("entry {} ", pos + 1)
                } else {
                    String::new()
                };
                if entry.is_empty() {
                    if several {
                        // Tolerate a trailing or doubled comma.
                        continue;
                    }
                    return Err(bad_key(line_no, format!("{which}is empty")));
                }
                let decoded = Zeroizing::new(KEY_B64.decode(entry).map_err(|_| {
                    bad_key(line_no, format!("{which}is not valid standard base64"))
                })?);
                if decoded.len() != KEY_LEN {
                    return Err(bad_key(
                        line_no,
                        format!(
                            "{which}decodes to {} bytes, a master key must be exactly {KEY_LEN} bytes",
                            decoded.len()
                        ),
                    ));
                }
                let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
                bytes.copy_from_slice(&decoded);
                let key = MasterKey::from_zeroizing(bytes);
                if !keys.iter().any(|k| k.id == key.id) {
                    keys.push(key);
                }
            }
        }
        if keys.is_empty() {
            return Err(VaultError::EmptyKeyring);
        }
        Ok(Keyring { keys })
    }

    /// The text form accepted by [`Keyring::parse`]: one base64 key per line,
    /// current first, each line ending in a newline.
    pub fn to_text(&self) -> SecretString {
        // 44 base64 characters plus a newline per key. Reserving the exact
        // length means `into_boxed_str` inside `SecretString::from` does not
        // reallocate and leave an unzeroized copy behind.
        let encoded_len = base64::encoded_len(KEY_LEN, true).unwrap_or(44);
        let mut text = String::with_capacity(self.keys.len() * (encoded_len + 1));
        for key in &self.keys {
            KEY_B64.encode_string(key.bytes.as_ref(), &mut text);
            text.push('\n');
        }
        SecretString::from(text)
    }

    /// The current key: the one used to seal and wrap.
    #[expect(
        clippy::indexing_slicing,
        reason = "every constructor of a Keyring gives it at least one key"
    )]
    pub fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// Ids of all keys, current first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// A keyring with `new_current` as the current key and this keyring's
    /// keys kept after it (so records sealed under them still open). If
    /// `new_current` is already in the keyring it is moved to the front.
    pub fn with_current(&self, new_current: MasterKey) -> Keyring {
        let mut keys = Vec::with_capacity(self.keys.len() + 1);
        let new_id = new_current.id.clone();
        keys.push(new_current);
        keys.extend(self.keys.iter().filter(|k| k.id != new_id).cloned());
        Keyring { keys }
    }

    /// A keyring holding only the current key (after every record has been
    /// rewrapped, the old keys can be dropped).
    pub fn only_current(&self) -> Keyring {
        Keyring::new(self.current().clone())
    }

    /// Whether a key with this id is in the keyring.
    pub fn contains(&self, key_id: &str) -> bool {
        self.get(key_id).is_some()
    }

    /// The key with this id, if the keyring holds it.
    pub fn get(&self, key_id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == key_id)
    }

    /// Number of keys (always at least one).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: a keyring holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids()).finish()
    }
}

fn bad_key(line: usize, reason: String) -> VaultError {
    VaultError::BadKey { line, reason }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn id_is_first_8_bytes_of_sha256_in_hex() {
        let key = MasterKey::from_bytes([7u8; KEY_LEN]);
        let digest = Sha256::digest([7u8; KEY_LEN]);
        assert_eq!(key.id(), hex::encode(&digest[..8]));
        assert_eq!(key.id().len(), 16);
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(MasterKey::generate().id(), MasterKey::generate().id());
    }

    #[test]
    fn text_round_trip() {
        let ring = Keyring::generate().with_current(MasterKey::generate());
        let text = ring.to_text();
        assert!(text.expose_secret().ends_with('\n'));
        assert_eq!(text.expose_secret().lines().count(), 2);
        let parsed = Keyring::parse(text.expose_secret()).unwrap();
        assert_eq!(parsed.ids(), ring.ids());
        assert_eq!(parsed, ring);
    }

    #[test]
    fn parse_accepts_commas_comments_blank_lines_and_no_padding() {
        let a = [1u8; KEY_LEN];
        let b = [2u8; KEY_LEN];
        let c = [3u8; KEY_LEN];
        let text = format!(
            "# master keys\n\n  {} , {}\n# old\n{}\n",
            b64(&a),
            b64(&b),
            b64(&c).trim_end_matches('=')
        );
        let ring = Keyring::parse(&text).unwrap();
        let ids: Vec<String> = [a, b, c]
            .into_iter()
            .map(|k| MasterKey::from_bytes(k).id().to_owned())
            .collect();
        assert_eq!(ring.ids(), ids);
        assert_eq!(ring.current().id(), ids[0]);
    }

    #[test]
    fn parse_errors_name_the_line_and_do_not_echo_the_key() {
        let good = b64(&[1u8; KEY_LEN]);
        let not_b64 = "this*is*not*base64*at*all*nope*nope*nope*nop";
        let err = Keyring::parse(&format!("{good}\n\n{not_b64}\n")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, VaultError::BadKey { line: 3, .. }), "{msg}");
        assert!(msg.contains("line 3") && msg.contains("base64"), "{msg}");
        assert!(!msg.contains(not_b64));

        let short = b64(&[9u8; 16]);
        let err = Keyring::parse(&format!("# c\n{good},{short}")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, VaultError::BadKey { line: 2, .. }), "{msg}");
        assert!(msg.contains("entry 2") && msg.contains("16 bytes"), "{msg}");
        assert!(!msg.contains(&short) && !msg.contains(&good));

        assert!(matches!(
            Keyring::parse("# nothing\n\n"),
            Err(VaultError::EmptyKeyring)
        ));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let bytes = [0xABu8; KEY_LEN];
        let key = MasterKey::from_bytes(bytes);
        let ring = Keyring::new(key.clone()).with_current(MasterKey::generate());
        let encoded = b64(&bytes);
        for dbg in [
            format!("{key:?}"),
            format!("{ring:?}"),
            format!("{ring:#?}"),
        ] {
            assert!(!dbg.contains(&encoded), "{dbg}");
            assert!(!dbg.contains(&encoded[..20]), "{dbg}");
            assert!(!dbg.to_lowercase().contains("abababab"), "{dbg}");
            assert!(!dbg.contains("171, 171"), "{dbg}");
            assert!(dbg.contains(key.id()), "{dbg}");
        }
        let text = ring.to_text();
        assert!(!format!("{text:?}").contains(&encoded));
    }

    #[test]
    fn rotation_helpers() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let ring = Keyring::new(old.clone());
        let rotated = ring.with_current(new.clone());
        assert_eq!(
            rotated.ids(),
            vec![new.id().to_owned(), old.id().to_owned()]
        );
        assert!(rotated.contains(old.id()) && rotated.contains(new.id()));
        let only = rotated.only_current();
        assert_eq!(only.ids(), vec![new.id().to_owned()]);
        assert!(!only.contains(old.id()));
        // Re-adding an existing key moves it to the front, no duplicate.
        let back = rotated.with_current(old.clone());
        assert_eq!(back.ids(), vec![old.id().to_owned(), new.id().to_owned()]);
    }
}
