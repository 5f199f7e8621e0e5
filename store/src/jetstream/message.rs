//! What one JetStream message carries: an append request (stream, expected revision, events),
//! and the subject that names its stream.
//!
//! Every node applies the messages of the log in sequence order with the same rules
//! ([`crate::state::WriteState::plan`]), so the message is the request, not its outcome: a
//! message whose request fails (a lost race that slipped past the server's sequence check, an
//! event id already in another stream) is in the log and changes nothing, on every node alike.

use crate::{EventId, ExpectedRevision, NewEvent, limits};

/// Format version of the payload.
const VERSION: u8 = 1;

/// An append request as carried in a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AppendRequest {
    pub(crate) stream: String,
    pub(crate) expected: ExpectedRevision,
    pub(crate) events: Vec<NewEvent>,
}

/// Encodes a request: version, stream, expected revision, then each event's id, type and data,
/// lengths little-endian.
pub(crate) fn encode(stream: &str, expected: ExpectedRevision, events: &[NewEvent]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| 16 + 2 + e.event_type.len() + 4 + e.data.len())
        .sum();
    let mut out = Vec::with_capacity(1 + 2 + stream.len() + 9 + 4 + size);
    out.push(VERSION);
    out.extend_from_slice(&(stream.len() as u16).to_le_bytes());
    out.extend_from_slice(stream.as_bytes());
    let (tag, revision) = match expected {
        ExpectedRevision::Any => (0u8, 0),
        ExpectedRevision::NoStream => (1, 0),
        ExpectedRevision::Exact(r) => (2, r),
    };
    out.push(tag);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for e in events {
        out.extend_from_slice(&e.id.0.to_le_bytes());
        out.extend_from_slice(&(e.event_type.len() as u16).to_le_bytes());
        out.extend_from_slice(e.event_type.as_bytes());
        out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.data);
    }
    out
}

/// Decodes a request; `Err` says what is wrong (never panics on any input).
pub(crate) fn decode(bytes: &[u8]) -> Result<AppendRequest, String> {
    let mut r = Reader { bytes };
    let version = r.u8()?;
    if version != VERSION {
        return Err(format!("payload version {version}, expected {VERSION}"));
    }
    let len = usize::from(r.u16()?);
    let stream = r.string(len)?;
    let expected = match (r.u8()?, r.u64()?) {
        (0, _) => ExpectedRevision::Any,
        (1, _) => ExpectedRevision::NoStream,
        (2, revision) => ExpectedRevision::Exact(revision),
        (tag, _) => return Err(format!("expected-revision tag {tag}")),
    };
    let count = r.u32()? as usize;
    if count > limits::APPEND_EVENTS_MAX {
        return Err(format!("{count} events"));
    }
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        let id = EventId(u128::from_le_bytes(
            r.take(16)?.try_into().expect("16 bytes"),
        ));
        let len = usize::from(r.u16()?);
        let event_type = r.string(len)?;
        let len = r.u32()? as usize;
        let data = r.take(len)?.to_vec();
        events.push(NewEvent {
            id,
            event_type,
            data,
        });
    }
    if !r.bytes.is_empty() {
        return Err(format!("{} bytes after the last event", r.bytes.len()));
    }
    Ok(AppendRequest {
        stream,
        expected,
        events,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!(
                "truncated: {n} bytes wanted, {} left",
                self.bytes.len()
            ));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self, len: usize) -> Result<String, String> {
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
    }
}

/// The subject of `stream`'s messages: `<prefix>.s.` and the stream name with each `/`-separated
/// segment as one subject token. Bytes outside `[A-Za-z0-9_-]` are written `%XX` and an empty
/// segment as `%`, so every name maps to a distinct valid subject and the server can check the
/// last sequence of each stream on its own.
pub(crate) fn subject(prefix: &str, stream: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 3 + stream.len() * 3 / 2);
    out.push_str(prefix);
    out.push_str(".s");
    for segment in stream.split('/') {
        out.push('.');
        if segment.is_empty() {
            out.push('%');
        }
        for b in segment.bytes() {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let events = vec![
            NewEvent {
                id: EventId(u128::MAX - 7),
                event_type: "Debited.v2".into(),
                data: br#"{"a":1}"#.to_vec(),
            },
            NewEvent {
                id: EventId(3),
                event_type: String::new(),
                data: Vec::new(),
            },
        ];
        for expected in [
            ExpectedRevision::Any,
            ExpectedRevision::NoStream,
            ExpectedRevision::Exact(41),
        ] {
            let bytes = encode("wallet/ait-devnet/ait1ab", expected, &events);
            let request = decode(&bytes).unwrap();
            assert_eq!(request.stream, "wallet/ait-devnet/ait1ab");
            assert_eq!(request.expected, expected);
            assert_eq!(request.events, events);
            // Every strict prefix is refused, and so is a trailing byte.
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "prefix of {cut} bytes");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer).is_err());
        }
    }

    #[test]
    fn subjects_are_distinct_and_valid() {
        let names = [
            "wallet/ait-devnet/ait1ab",
            "wallet/ait.devnet/x",
            "wallet/ait%2Edevnet/x",
            "a//b",
            "a/b/",
            "/a",
            "a b",
            "a*>",
            "ü",
        ];
        let subjects: Vec<String> = names.iter().map(|n| subject("aitbc", n)).collect();
        assert_eq!(subjects[0], "aitbc.s.wallet.ait-devnet.ait1ab");
        assert_eq!(subjects[1], "aitbc.s.wallet.ait%2Edevnet.x");
        assert_eq!(subjects[3], "aitbc.s.a.%.b");
        for s in &subjects {
            assert!(
                s.split('.').all(|token| !token.is_empty()),
                "no empty token in {s}"
            );
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>'),
                "only printable bytes and no wildcards in {s}"
            );
        }
        let unique: std::collections::HashSet<&String> = subjects.iter().collect();
        assert_eq!(unique.len(), subjects.len());
    }
}
