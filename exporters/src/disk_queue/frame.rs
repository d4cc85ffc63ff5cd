//! One record of the disk queue as it lies in a segment file, and how a reader finds the next
//! whole record after damaged bytes.
//!
//! `marker "MWRW" | len: u32 LE | items: u32 LE | crc: u32 LE | payload (len bytes)`, where
//! `crc` is the CRC-32 of the marker, both fields and the payload (the marker dates from the
//! remote-write exporter, the queue's first user; queues it wrote stay readable). As in the store's journal the
//! checksum covers the length, so a zero-filled or torn tail never reads as a record, and it
//! covers the item count too. The marker lets a reader resynchronise past damage by looking
//! for it instead of trying a checksum at every byte offset.

use std::io::{self, Read};

/// The first bytes of every record.
pub const MARKER: [u8; 4] = *b"MWRW";
/// Bytes before the payload.
pub const HEADER: u64 = 16;

/// One queued record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What was appended.
    pub payload: Vec<u8>,
    /// The item count given at append (samples, data points, log records, spans).
    pub items: u32,
}

impl Record {
    /// Bytes the record takes in its segment.
    pub fn framed_len(&self) -> u64 {
        HEADER + self.payload.len() as u64
    }
}

/// Appends `payload` with its header to `out`; a payload over 4 GiB is refused.
pub fn encode(payload: &[u8], items: u32, out: &mut Vec<u8>) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record over 4 GiB"))?;
    let start = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&items.to_le_bytes());
    let crc = checksum(&out[start..], payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// CRC-32 of the marker and fields (the header without its checksum) and the payload.
fn checksum(fields: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(fields);
    h.update(payload);
    h.finalize()
}

/// `(len, samples, crc)` of a header whose marker is right.
fn fields(header: &[u8]) -> Option<(u32, u32, u32)> {
    let word = |i: usize| {
        header
            .get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    (header.get(..4)? == MARKER).then_some(())?;
    Some((word(4)?, word(8)?, word(12)?))
}

/// Reads the record at the reader's position, `available` bytes before the end of its segment.
/// `Ok(None)` when those bytes do not start with a whole record whose checksum matches (damaged
/// or torn); `Err` only when the file cannot be read.
pub fn read(r: &mut impl Read, available: u64) -> io::Result<Option<Record>> {
    if available < HEADER {
        return Ok(None);
    }
    let mut header = [0u8; HEADER as usize];
    if !read_full(r, &mut header)? {
        return Ok(None);
    }
    let Some((len, items, crc)) = fields(&header) else {
        return Ok(None);
    };
    // A damaged length must not make us allocate gigabytes.
    if u64::from(len) > available - HEADER {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    if !read_full(r, &mut payload)? {
        return Ok(None);
    }
    Ok((checksum(&header[..12], &payload) == crc).then_some(Record { payload, items }))
}

/// `read_exact`, with a file shorter than its recorded size (truncated behind our back) read
/// as damage rather than as a failure to read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// `bytes` start with damage (no whole record at index 0): where the first whole record after
/// index 0 starts, if any.
pub fn next_whole(bytes: &[u8]) -> Option<usize> {
    let mut from = 1;
    while let Some(i) = bytes
        .get(from..)?
        .windows(MARKER.len())
        .position(|w| w == MARKER)
    {
        let at = from + i;
        if whole_at(bytes, at) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn whole_at(bytes: &[u8], at: usize) -> bool {
    let Some((len, _, crc)) = bytes.get(at..).and_then(fields) else {
        return false;
    };
    let start = at + HEADER as usize;
    bytes
        .get(start..start.saturating_add(len as usize))
        .is_some_and(|payload| checksum(&bytes[at..at + 12], payload) == crc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8], items: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode(payload, items, &mut out).expect("encodes");
        out
    }

    #[test]
    fn a_record_reads_back_and_any_changed_header_byte_fails_the_check() {
        let bytes = framed(b"payload", 7);
        let n = bytes.len() as u64;
        let back = read(&mut &bytes[..], n).expect("reads").expect("whole");
        assert_eq!((back.payload.as_slice(), back.items), (&b"payload"[..], 7));
        assert_eq!(back.framed_len(), n);
        // Marker, length, item count, checksum, payload: each byte is covered.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert_eq!(read(&mut &bad[..], n).expect("reads"), None, "byte {i}");
        }
        // Fewer bytes left in the segment than the record claims: torn.
        assert_eq!(read(&mut &bytes[..], n - 1).expect("reads"), None);
        // Zeros, as a crash can leave at the end of a file, are no record.
        assert_eq!(read(&mut &[0u8; 64][..], 64).expect("reads"), None);
    }

    #[test]
    fn next_whole_skips_damage_and_a_marker_without_its_record() {
        let mut bytes = framed(b"first", 1);
        bytes[HEADER as usize] ^= 0xff;
        // A stray marker inside the damage, with no valid record behind it.
        bytes.extend_from_slice(b"..MWRW\x05\0\0\0junk");
        let second_at = bytes.len();
        bytes.extend_from_slice(&framed(b"second", 2));
        assert_eq!(next_whole(&bytes), Some(second_at));
        assert_eq!(next_whole(&bytes[..second_at + 3]), None);
        assert_eq!(next_whole(&[]), None);
    }
}
