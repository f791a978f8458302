//! Media a customer sent (today: an image a web chat visitor uploaded): which image types
//! are taken, how a file proves its type, and the reference an inbound message carries.
//!
//! A browser labels a file by its name's extension, so the label alone proves nothing: a
//! file is an image of a type only when its first bytes are that format's signature. An
//! image that is not what it says is refused rather than served with a wrong type, which
//! a browser could then sniff into something runnable.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest image a visitor may upload: 5 MiB, enough for a phone photo re-encoded
/// by the browser, small enough that a stored row stays cheap to read back whole.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// An image type Relais takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageType {
    Jpeg,
    Png,
    Gif,
    Webp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error(
        "`{0}` is not an image type taken here; send image/jpeg, image/png, image/gif or image/webp"
    )]
    Unsupported(String),
    #[error("the file is not {0}: its first bytes are not that format's signature")]
    Mismatch(ImageType),
}

impl ImageType {
    /// The type a `Content-Type` value names (parameters and case ignored).
    pub fn from_mime(raw: &str) -> Result<ImageType, ImageError> {
        let essence = raw.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/jpeg" => Ok(ImageType::Jpeg),
            "image/png" => Ok(ImageType::Png),
            "image/gif" => Ok(ImageType::Gif),
            "image/webp" => Ok(ImageType::Webp),
            _ => Err(ImageError::Unsupported(essence.to_owned())),
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Gif => "image/gif",
            ImageType::Webp => "image/webp",
        }
    }

    /// Whether `bytes` begin with this format's signature.
    pub fn signs(self, bytes: &[u8]) -> bool {
        match self {
            ImageType::Jpeg => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            ImageType::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            ImageType::Gif => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
            ImageType::Webp => {
                bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP"
            }
        }
    }

    /// The type `mime` names, when `bytes` prove it.
    pub fn checked(mime: &str, bytes: &[u8]) -> Result<ImageType, ImageError> {
        let kind = ImageType::from_mime(mime)?;
        if kind.signs(bytes) {
            Ok(kind)
        } else {
            Err(ImageError::Mismatch(kind))
        }
    }
}

impl fmt::Display for ImageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

/// What an inbound message says of the media it carries: the stored upload's id, its
/// type and size. The bytes stay in the media store, read by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    pub id: String,
    pub mime_type: String,
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn an_image_is_taken_only_when_its_bytes_match_its_label() {
        assert_eq!(ImageType::checked("image/png", PNG), Ok(ImageType::Png));
        assert_eq!(
            ImageType::checked("Image/PNG; charset=x", PNG),
            Ok(ImageType::Png)
        );
        assert_eq!(
            ImageType::checked("image/png", b"hello, world"),
            Err(ImageError::Mismatch(ImageType::Png))
        );
        assert_eq!(
            ImageType::checked("image/jpeg", PNG),
            Err(ImageError::Mismatch(ImageType::Jpeg))
        );
        assert!(matches!(
            ImageType::checked("image/svg+xml", b"<svg/>"),
            Err(ImageError::Unsupported(_))
        ));
        assert_eq!(
            ImageType::checked("image/gif", b"GIF89a\x01\0"),
            Ok(ImageType::Gif)
        );
        assert_eq!(
            ImageType::checked("image/webp", b"RIFF\0\0\0\0WEBPVP8 "),
            Ok(ImageType::Webp)
        );
        assert_eq!(
            ImageType::checked("image/jpeg", b"\xFF\xD8\xFF\xE0"),
            Ok(ImageType::Jpeg)
        );
        assert!(ImageType::checked("image/webp", b"RIFF").is_err());
    }
}
