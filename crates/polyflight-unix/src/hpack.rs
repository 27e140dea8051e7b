//! Just enough HPACK (RFC 7541) to re-encode a client's request headers: a decoder that keeps
//! the dynamic table in step with the client's encoder, and an encoder that writes only
//! literals without indexing (so it needs no table, and leaves the table of the HTTP/2 server
//! behind it empty and unused). Used by [`crate::authority`].
//!
//! The decoder parses untrusted bytes: every length is checked against the bytes actually
//! present before it is used, integers are bounded, a decoded header list is bounded by the
//! caller's limit (a one-byte index can name a 4 KiB table entry, so this matters), and nothing
//! is allocated for a size the peer merely claims. Malformed input is an [`HpackError`], never
//! a panic.

use std::collections::VecDeque;
use std::fmt;

/// The per-entry overhead the RFC adds to name and value lengths (section 4.1).
const ENTRY_OVERHEAD: usize = 32;

/// Integers above this are refused: nothing in a header block legitimately needs more, and it
/// keeps the arithmetic far from overflow.
const MAX_INTEGER: usize = 1 << 28;

/// Why a header block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HpackError {
    /// The block ended inside a representation.
    Truncated,
    /// An integer exceeded the decoder's bound.
    IntegerTooLarge,
    /// Index 0, or an index beyond the static and dynamic tables.
    InvalidIndex(usize),
    /// A Huffman-coded string was malformed (bad padding, or the EOS symbol inside).
    InvalidHuffman,
    /// A dynamic table size update above the allowed maximum.
    TableSizeTooLarge(usize),
    /// A dynamic table size update after the first header field of a block.
    LateTableSizeUpdate,
    /// The decoded header list exceeds the caller's limit.
    HeaderListTooLarge,
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HpackError::Truncated => f.write_str("header block ends inside a field"),
            HpackError::IntegerTooLarge => f.write_str("integer too large"),
            HpackError::InvalidIndex(i) => write!(f, "invalid table index {i}"),
            HpackError::InvalidHuffman => f.write_str("malformed Huffman-coded string"),
            HpackError::TableSizeTooLarge(s) => {
                write!(f, "dynamic table size update to {s} exceeds the maximum")
            }
            HpackError::LateTableSizeUpdate => {
                f.write_str("dynamic table size update after a header field")
            }
            HpackError::HeaderListTooLarge => f.write_str("header list too large"),
        }
    }
}

impl std::error::Error for HpackError {}

/// One decoded header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    /// The name, as sent (HTTP/2 requires lowercase; that is the server's to check).
    pub name: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Sent as "never indexed" (a sensitive value): re-encoded the same way.
    pub never_indexed: bool,
}

impl HeaderField {
    /// A field that may be indexed.
    pub fn new(name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        HeaderField {
            name: name.into(),
            value: value.into(),
            never_indexed: false,
        }
    }

    fn size(&self) -> usize {
        self.name.len() + self.value.len() + ENTRY_OVERHEAD
    }
}

/// The static table (RFC 7541 appendix A); index 1 is the first entry.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The dynamic table: newest entry first, bounded by `max_size` in RFC size units.
#[derive(Debug)]
struct DynamicTable {
    entries: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    fn get(&self, index: usize) -> Option<&(Vec<u8>, Vec<u8>)> {
        self.entries.get(index)
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.entries.pop_back() {
                Some((name, value)) => self.size -= name.len() + value.len() + ENTRY_OVERHEAD,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }

    fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// Adds an entry, evicting old ones; an entry larger than the table empties it and is not
    /// stored (RFC 7541 section 4.4 — not an error).
    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.entries.push_front((name, value));
    }
}

/// An HPACK decoder for one direction of one HTTP/2 connection.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// The largest table size the encoder may switch to: the SETTINGS_HEADER_TABLE_SIZE the
    /// receiving endpoint advertised.
    max_allowed_size: usize,
}

impl Decoder {
    /// A decoder whose peer may use a dynamic table of up to `max_table_size` bytes (HTTP/2's
    /// default is 4096).
    pub fn new(max_table_size: usize) -> Self {
        Decoder {
            table: DynamicTable {
                entries: VecDeque::new(),
                size: 0,
                max_size: max_table_size,
            },
            max_allowed_size: max_table_size,
        }
    }

    /// Decodes one complete header block, updating the dynamic table as the encoder did. The
    /// decoded list may not exceed `max_list_size` (counting each field as name + value + 32
    /// bytes, as SETTINGS_MAX_HEADER_LIST_SIZE does).
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
    ) -> Result<Vec<HeaderField>, HpackError> {
        let mut input = block;
        let mut fields = Vec::new();
        let mut list_size = 0usize;
        while let Some(&first) = input.first() {
            let field = if first & 0x80 != 0 {
                // Indexed header field.
                let index = integer(&mut input, 7)?;
                let (name, value) = self.entry(index)?;
                HeaderField::new(name, value)
            } else if first & 0xc0 == 0x40 {
                // Literal with incremental indexing.
                let field = self.literal(&mut input, 6, false)?;
                self.table.insert(field.name.clone(), field.value.clone());
                field
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update: only before the first field of a block.
                if !fields.is_empty() {
                    return Err(HpackError::LateTableSizeUpdate);
                }
                let size = integer(&mut input, 5)?;
                if size > self.max_allowed_size {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                self.table.set_max_size(size);
                continue;
            } else {
                // Literal without indexing (0000) or never indexed (0001).
                let never_indexed = first & 0x10 != 0;
                self.literal(&mut input, 4, never_indexed)?
            };
            list_size = list_size.saturating_add(field.size());
            if list_size > max_list_size {
                return Err(HpackError::HeaderListTooLarge);
            }
            fields.push(field);
        }
        Ok(fields)
    }

    /// The (name, value) at a 1-based index of the combined static + dynamic table.
    fn entry(&self, index: usize) -> Result<(Vec<u8>, Vec<u8>), HpackError> {
        if index == 0 {
            return Err(HpackError::InvalidIndex(index));
        }
        if let Some((name, value)) = STATIC_TABLE.get(index - 1) {
            return Ok((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        }
        self.table
            .get(index - 1 - STATIC_TABLE.len())
            .cloned()
            .ok_or(HpackError::InvalidIndex(index))
    }

    /// A literal representation whose name index has a `prefix_bits`-bit prefix.
    fn literal(
        &self,
        input: &mut &[u8],
        prefix_bits: u8,
        never_indexed: bool,
    ) -> Result<HeaderField, HpackError> {
        let name_index = integer(input, prefix_bits)?;
        let name = if name_index == 0 {
            string(input)?
        } else {
            self.entry(name_index)?.0
        };
        let value = string(input)?;
        Ok(HeaderField {
            name,
            value,
            never_indexed,
        })
    }
}

/// Decodes an integer with an N-bit prefix (RFC 7541 section 5.1), advancing `input`.
fn integer(input: &mut &[u8], prefix_bits: u8) -> Result<usize, HpackError> {
    let (&first, rest) = input.split_first().ok_or(HpackError::Truncated)?;
    *input = rest;
    let mask = (1usize << prefix_bits) - 1;
    let mut value = first as usize & mask;
    if value < mask {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let (&byte, rest) = input.split_first().ok_or(HpackError::Truncated)?;
        *input = rest;
        value += ((byte & 0x7f) as usize) << shift;
        if value > MAX_INTEGER {
            return Err(HpackError::IntegerTooLarge);
        }
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerTooLarge);
        }
    }
}

/// Decodes a string literal (RFC 7541 section 5.2), advancing `input`.
fn string(input: &mut &[u8]) -> Result<Vec<u8>, HpackError> {
    let huffman = input.first().ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(input, 7)?;
    if len > input.len() {
        return Err(HpackError::Truncated);
    }
    let (bytes, rest) = input.split_at(len);
    *input = rest;
    if huffman {
        huffman_decode(bytes)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Appends an integer with an N-bit prefix; `first` holds the representation's flag bits.
fn put_integer(out: &mut Vec<u8>, first: u8, prefix_bits: u8, value: usize) {
    let mask = (1usize << prefix_bits) - 1;
    if value < mask {
        out.push(first | value as u8);
        return;
    }
    out.push(first | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_integer(out, 0x00, 7, bytes.len());
    out.extend_from_slice(bytes);
}

/// Encodes fields as literals without indexing (or never indexed, where the field was), with
/// plain (not Huffman-coded) strings. Such a block neither reads nor changes the receiver's
/// dynamic table.
pub fn encode_literals(fields: &[HeaderField], out: &mut Vec<u8>) {
    for field in fields {
        out.push(if field.never_indexed { 0x10 } else { 0x00 });
        put_string(out, &field.name);
        put_string(out, &field.value);
    }
}

// ---- Huffman code (RFC 7541 appendix B) --------------------------------------------------------

/// The bit length of each symbol's code (0..=255, then EOS = 256). The code is canonical: codes
/// of one length are consecutive, in symbol order, and follow the shorter ones, so the lengths
/// alone define it (the tests check it against code values listed in the RFC).
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0..16
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16..32
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // ' '..'/'
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // '0'..'?'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // '@'..'O'
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 'P'..'_'
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // '`'..'o'
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 'p'..127
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128..144
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144..160
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160..176
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176..192
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192..208
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208..224
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224..240
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240..256
    30, // EOS
];

const EOS: u16 = 256;
const MAX_CODE_LEN: usize = 30;

/// The canonical code in decodable form: for each length, the first code, how many codes have
/// that length, and where their symbols start in `symbols` (symbols sorted by length, then
/// value).
struct Canonical {
    first_code: [u32; MAX_CODE_LEN + 1],
    count: [u32; MAX_CODE_LEN + 1],
    first_index: [u32; MAX_CODE_LEN + 1],
    symbols: [u16; 257],
}

const fn canonical() -> Canonical {
    let mut count = [0u32; MAX_CODE_LEN + 1];
    let mut i = 0;
    while i < 257 {
        count[CODE_LENGTHS[i] as usize] += 1;
        i += 1;
    }
    let mut first_code = [0u32; MAX_CODE_LEN + 1];
    let mut first_index = [0u32; MAX_CODE_LEN + 1];
    let mut code = 0u32;
    let mut index = 0u32;
    let mut len = 1;
    while len <= MAX_CODE_LEN {
        code = (code + count[len - 1]) << 1;
        first_code[len] = code;
        first_index[len] = index;
        index += count[len];
        len += 1;
    }
    let mut symbols = [0u16; 257];
    let mut next = first_index;
    let mut sym = 0;
    while sym < 257 {
        let len = CODE_LENGTHS[sym] as usize;
        symbols[next[len] as usize] = sym as u16;
        next[len] += 1;
        sym += 1;
    }
    Canonical {
        first_code,
        count,
        first_index,
        symbols,
    }
}

static CODE: Canonical = canonical();

/// Decodes a Huffman-coded string. The output is at most 8/5 of the input (the shortest code
/// has 5 bits), so its size is bounded by bytes actually received.
fn huffman_decode(bytes: &[u8]) -> Result<Vec<u8>, HpackError> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 2);
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in bytes {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            let offset = code.wrapping_sub(CODE.first_code[len]);
            if code >= CODE.first_code[len] && offset < CODE.count[len] {
                let symbol = CODE.symbols[(CODE.first_index[len] + offset) as usize];
                if symbol == EOS {
                    return Err(HpackError::InvalidHuffman);
                }
                out.push(symbol as u8);
                code = 0;
                len = 0;
            } else if len >= MAX_CODE_LEN {
                return Err(HpackError::InvalidHuffman);
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HpackError::InvalidHuffman);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The code of a symbol, from the canonical form.
    fn code_of(symbol: usize) -> (u32, usize) {
        let len = CODE_LENGTHS[symbol] as usize;
        let rank = CODE.symbols[CODE.first_index[len] as usize..]
            .iter()
            .position(|&s| s as usize == symbol)
            .unwrap();
        (CODE.first_code[len] + rank as u32, len)
    }

    pub(crate) fn huffman_encode(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc: u64 = 0;
        let mut bits = 0;
        for &b in bytes {
            let (code, len) = code_of(b as usize);
            acc = (acc << len) | code as u64;
            bits += len;
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        if bits > 0 {
            let pad = 8 - bits;
            out.push(((acc << pad) as u8) | ((1u8 << pad) - 1));
        }
        out
    }

    /// A test encoder that exercises what real clients send: incremental indexing, indexed
    /// fields from the dynamic table and Huffman-coded strings.
    pub(crate) struct IndexingEncoder {
        table: VecDeque<(Vec<u8>, Vec<u8>)>,
    }

    impl IndexingEncoder {
        pub(crate) fn new() -> Self {
            IndexingEncoder {
                table: VecDeque::new(),
            }
        }

        pub(crate) fn encode(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
            let mut out = Vec::new();
            for (name, value) in fields {
                let (name, value) = (name.as_bytes().to_vec(), value.as_bytes().to_vec());
                if let Some(i) = self
                    .table
                    .iter()
                    .position(|e| *e == (name.clone(), value.clone()))
                {
                    put_integer(&mut out, 0x80, 7, 62 + i);
                    continue;
                }
                out.push(0x40);
                let h = huffman_encode(&name);
                put_integer(&mut out, 0x80, 7, h.len());
                out.extend(h);
                let h = huffman_encode(&value);
                put_integer(&mut out, 0x80, 7, h.len());
                out.extend(h);
                // Small values only in tests: the 4096-byte table never evicts here.
                self.table.push_front((name, value));
            }
            out
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn pairs(fields: &[HeaderField]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8(f.name.clone()).unwrap(),
                    String::from_utf8(f.value.clone()).unwrap(),
                )
            })
            .collect()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_code_is_complete_and_matches_the_rfc() {
        // Kraft equality: a complete prefix code.
        let sum: u64 = CODE_LENGTHS.iter().map(|&l| 1u64 << (30 - l)).sum();
        assert_eq!(sum, 1 << 30);
        // Code values listed in RFC 7541 appendix B.
        for (symbol, code, len) in [
            (0usize, 0x1ff8u32, 13usize),
            (1, 0x7fffd8, 23),
            (9, 0xffffea, 24),
            (10, 0x3ffffffc, 30),
            (32, 0x14, 6),
            (48, 0x0, 5),
            (b'a' as usize, 0x3, 5),
            (b'z' as usize, 0x7b, 7),
            (127, 0xffffffc, 28),
            (128, 0xfffe6, 20),
            (199, 0x1ffffec, 25),
            (220, 0xffffffd, 28),
            (255, 0x3ffffee, 26),
            (256, 0x3fffffff, 30),
        ] {
            assert_eq!(code_of(symbol), (code, len), "symbol {symbol}");
        }
    }

    #[test]
    fn rfc_request_examples_without_huffman() {
        // RFC 7541 C.3: three requests on one connection.
        let mut decoder = Decoder::new(4096);
        let first = decoder
            .decode(
                &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
                1 << 20,
            )
            .unwrap();
        assert_eq!(
            pairs(&first),
            owned(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ])
        );
        let second = decoder
            .decode(&hex("8286 84be 5808 6e6f 2d63 6163 6865"), 1 << 20)
            .unwrap();
        assert_eq!(second[3].value, b"www.example.com");
        assert_eq!(pairs(&second[4..]), owned(&[("cache-control", "no-cache")]));
        let third = decoder
            .decode(
                &hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
                1 << 20,
            )
            .unwrap();
        assert_eq!(
            pairs(&third),
            owned(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ])
        );
    }

    #[test]
    fn rfc_request_examples_with_huffman() {
        // RFC 7541 C.4.
        let mut decoder = Decoder::new(4096);
        let first = decoder
            .decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"), 1 << 20)
            .unwrap();
        assert_eq!(first[3].value, b"www.example.com");
        let second = decoder
            .decode(&hex("8286 84be 5886 a8eb 1064 9cbf"), 1 << 20)
            .unwrap();
        assert_eq!(pairs(&second[4..]), owned(&[("cache-control", "no-cache")]));
        let third = decoder
            .decode(
                &hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
                1 << 20,
            )
            .unwrap();
        assert_eq!(pairs(&third[4..]), owned(&[("custom-key", "custom-value")]));
        assert_eq!(
            huffman_encode(b"www.example.com"),
            hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")
        );
    }

    #[test]
    fn literal_encoding_round_trips_through_a_fresh_decoder() {
        let fields = vec![
            HeaderField::new(":method", "POST"),
            HeaderField::new(":path", "/arrow.flight.protocol.FlightService/DoGet"),
            HeaderField {
                name: b"authorization".to_vec(),
                value: vec![b'x'; 300],
                never_indexed: true,
            },
        ];
        let mut block = Vec::new();
        encode_literals(&fields, &mut block);
        let mut decoder = Decoder::new(4096);
        assert_eq!(decoder.decode(&block, 1 << 20).unwrap(), fields);
        assert!(decoder.table.entries.is_empty(), "literals must not index");
    }

    #[test]
    fn indexing_encoder_round_trips() {
        let mut encoder = IndexingEncoder::new();
        let mut decoder = Decoder::new(4096);
        let request = [
            (":method", "POST"),
            (":authority", "%2Ftmp%2Fflight.sock"),
            ("user-agent", "grpc-c++/1.0 \u{e9}"),
        ];
        for _ in 0..3 {
            let block = encoder.encode(&request);
            assert_eq!(
                pairs(&decoder.decode(&block, 1 << 20).unwrap()),
                owned(&request)
            );
        }
    }

    #[test]
    fn table_eviction_and_size_updates() {
        let mut decoder = Decoder::new(4096);
        // Size update to 64, then a literal with indexing of 40 bytes + 32 overhead (too big:
        // empties the table, not an error).
        let mut block = vec![0x3f, 0x21]; // 001 11111 + 33 => 64
        block.push(0x40);
        put_string(&mut block, b"name-of-twenty-bytes");
        put_string(&mut block, b"value-of-twenty-byte");
        decoder.decode(&block, 1 << 20).unwrap();
        assert!(decoder.table.entries.is_empty());
        // Over the allowed maximum.
        let err = decoder.decode(&[0x3f, 0xe2, 0x1f], 1 << 20).unwrap_err();
        assert_eq!(err, HpackError::TableSizeTooLarge(4096 + 1));
        // After a field.
        let err = decoder.decode(&[0x82, 0x20], 1 << 20).unwrap_err();
        assert_eq!(err, HpackError::LateTableSizeUpdate);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let mut decoder = Decoder::new(4096);
        for (bytes, expected) in [
            (&[0x80][..], HpackError::InvalidIndex(0)),
            (&[0xbe], HpackError::InvalidIndex(62)),
            (&[0x40, 0x05, b'a'], HpackError::Truncated),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                HpackError::IntegerTooLarge,
            ),
            (&[0xff], HpackError::Truncated),
            // Huffman padding of 8 bits.
            (&[0x00, 0x81, 0xff, 0x00], HpackError::InvalidHuffman),
            // Huffman padding that is not all ones: '0' (00000) then 000.
            (&[0x00, 0x81, 0x00, 0x00], HpackError::InvalidHuffman),
            // EOS inside the string.
            (
                &[0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00],
                HpackError::InvalidHuffman,
            ),
        ] {
            assert_eq!(
                decoder.decode(bytes, 1 << 20).unwrap_err(),
                expected,
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn list_size_is_bounded_before_it_is_allocated() {
        let mut decoder = Decoder::new(4096);
        let mut block = vec![0x40];
        put_string(&mut block, b"k");
        put_string(&mut block, &[b'v'; 4000]);
        decoder.decode(&block, 1 << 20).unwrap();
        // Each one-byte reference to that entry decodes to ~4 KiB.
        let refs = vec![0xbe; 10_000];
        assert_eq!(
            decoder.decode(&refs, 64 * 1024).unwrap_err(),
            HpackError::HeaderListTooLarge
        );
    }

    /// A small deterministic generator, so failures reproduce.
    pub(crate) struct XorShift(pub u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000usize {
            let len = (rng.next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Bias some inputs towards valid prefixes, to get past the first byte.
            if round.is_multiple_of(3) && !bytes.is_empty() {
                bytes[0] = [0x82, 0x40, 0x00, 0x10, 0x20, 0xbe][round % 6];
            }
            let mut decoder = Decoder::new(4096);
            let _ = decoder.decode(&bytes, 16 * 1024);
            let _ = huffman_decode(&bytes);
        }
    }
}
