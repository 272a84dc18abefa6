//! Content digests as the registry API spells them.

use sha2::Digest as _;

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// `sha256:<hex>` of `data`.
pub fn sha256_str(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}
