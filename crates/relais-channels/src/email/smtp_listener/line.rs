//! Lines read from a client with a bound on their length: a line longer than the bound
//! is read to its end and dropped, so a client cannot make the server hold more than
//! one line's worth of memory, however long it sends without a line break.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What reading one line gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    /// A line, in the buffer, with its line break.
    Complete,
    /// A line longer than the bound: read and dropped.
    TooLong,
    /// The client closed the connection (a line it did not finish is dropped).
    Closed,
}

/// Reads one line ending in LF (CRLF on the wire, a bare LF tolerated) into `line`, at
/// most `limit` octets with its line break.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
    line: &mut Vec<u8>,
) -> std::io::Result<Line> {
    line.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Closed);
        }
        let (taken, ended) = match available.iter().position(|b| *b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        if !too_long {
            if line.len() + taken > limit {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(&available[..taken]);
            }
        }
        reader.consume(taken);
        if ended {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

/// The line without its line break.
pub(super) fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_over_the_limit_is_dropped_and_the_next_one_read() {
        let input: &[u8] = b"short\r\nfar too long a line\r\nok\nunfinished";
        let mut reader = tokio::io::BufReader::with_capacity(4, input);
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut reader, 10, &mut line).await.unwrap(),
            Line::Complete
        );
        assert_eq!(content(&line), b"short");
        assert_eq!(
            read_line(&mut reader, 10, &mut line).await.unwrap(),
            Line::TooLong
        );
        assert!(line.is_empty());
        assert_eq!(
            read_line(&mut reader, 10, &mut line).await.unwrap(),
            Line::Complete
        );
        assert_eq!(content(&line), b"ok");
        assert_eq!(
            read_line(&mut reader, 10, &mut line).await.unwrap(),
            Line::Closed
        );
    }
}
