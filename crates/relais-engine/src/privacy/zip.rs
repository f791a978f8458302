//! A zip archive of stored (uncompressed) entries, enough for an export of a few files:
//! every unzip tool and spreadsheet reads it, and it needs no compression crate. CSV of
//! one person's data is small; compressing it would save little.
//!
//! Format: PKWARE APPNOTE 6.3.x, §4.3 (local headers, central directory, end record),
//! without ZIP64 (an entry or the archive over 4 GiB is not something one export makes).

/// Builds an archive in memory.
#[derive(Debug, Default)]
pub struct ZipWriter {
    out: Vec<u8>,
    central: Vec<u8>,
    entries: u16,
}

/// 1980-01-01 00:00 in MS-DOS time/date: the entries carry no meaningful time.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;
/// Bit 11: names are UTF-8.
const FLAGS: u16 = 1 << 11;

impl ZipWriter {
    pub fn add(&mut self, name: &str, data: &[u8]) {
        let offset = self.out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let name = name.as_bytes();
        // Local file header.
        self.out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        self.out.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0
        self.out.extend_from_slice(&FLAGS.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes()); // method: stored
        self.out.extend_from_slice(&DOS_TIME.to_le_bytes());
        self.out.extend_from_slice(&DOS_DATE.to_le_bytes());
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out.extend_from_slice(&size.to_le_bytes()); // compressed
        self.out.extend_from_slice(&size.to_le_bytes()); // uncompressed
        self.out
            .extend_from_slice(&(name.len() as u16).to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes()); // extra
        self.out.extend_from_slice(name);
        self.out.extend_from_slice(data);
        // Central directory header.
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&20u16.to_le_bytes()); // made by
        c.extend_from_slice(&20u16.to_le_bytes()); // needed
        c.extend_from_slice(&FLAGS.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&DOS_TIME.to_le_bytes());
        c.extend_from_slice(&DOS_DATE.to_le_bytes());
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&size.to_le_bytes());
        c.extend_from_slice(&size.to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes()); // extra
        c.extend_from_slice(&0u16.to_le_bytes()); // comment
        c.extend_from_slice(&0u16.to_le_bytes()); // disk
        c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        c.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name);
        self.entries += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        let offset = self.out.len() as u32;
        let size = self.central.len() as u32;
        self.out.extend_from_slice(&self.central);
        self.out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes()); // this disk
        self.out.extend_from_slice(&0u16.to_le_bytes()); // disk of the directory
        self.out.extend_from_slice(&self.entries.to_le_bytes());
        self.out.extend_from_slice(&self.entries.to_le_bytes());
        self.out.extend_from_slice(&size.to_le_bytes());
        self.out.extend_from_slice(&offset.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes()); // comment
        self.out
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zip uses), bit by bit: a few kilobytes per export.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// The entries of a stored-only archive as [`ZipWriter`] writes it, by its central
/// directory: `(name, bytes)`. For tests and for `relais contacts export --zip` checks.
pub fn read_stored(archive: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(
            archive.get(at..at + 2)?.try_into().ok()?,
        ))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            archive.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    let end = archive.len().checked_sub(22)?;
    if u32_at(end)? != 0x0605_4b50 {
        return None;
    }
    let count = usize::from(u16_at(end + 10)?);
    let mut at = u32_at(end + 16)? as usize;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        if u32_at(at)? != 0x0201_4b50 {
            return None;
        }
        let crc = u32_at(at + 16)?;
        let size = u32_at(at + 20)? as usize;
        let name_len = usize::from(u16_at(at + 28)?);
        let offset = u32_at(at + 42)? as usize;
        let name = String::from_utf8(archive.get(at + 46..at + 46 + name_len)?.to_vec()).ok()?;
        let local_name_len = usize::from(u16_at(offset + 26)?);
        let extra = usize::from(u16_at(offset + 28)?);
        let start = offset + 30 + local_name_len + extra;
        let data = archive.get(start..start + size)?.to_vec();
        if crc32(&data) != crc {
            return None;
        }
        entries.push((name, data));
        at += 46 + name_len;
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn an_archive_reads_back_entry_by_entry() {
        let mut zip = ZipWriter::default();
        zip.add("a.csv", b"id\n1\n");
        zip.add("été.json", b"{}");
        let bytes = zip.finish();
        let entries = read_stored(&bytes).expect("readable");
        assert_eq!(
            entries,
            [
                ("a.csv".to_owned(), b"id\n1\n".to_vec()),
                ("été.json".to_owned(), b"{}".to_vec())
            ]
        );
        assert!(read_stored(&bytes[..bytes.len() - 1]).is_none());
    }
}
