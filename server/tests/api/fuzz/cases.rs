//! The case generator: a fixed-seed xorshift over pieces chosen to be awkward for a parser,
//! a router, a form decoder or a database.

/// xorshift64*: deterministic, good enough to pick cases.
pub struct Cases(u64);

/// Ids as a path segment or a field: signs, overflow, non-numbers, encodings, traversal.
const IDS: &[&str] = &[
    "1",
    "0",
    "-1",
    "-9223372036854775808",
    "9223372036854775807",
    "18446744073709551616",
    "1.5",
    "1e3",
    "0x10",
    " 1",
    "abc",
    "%00",
    "1%00",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%2F..%2F",
    "%F0%28%8C%BC",
    "%C0%AF",
    "%",
    "%ZZ",
    "NaN",
];

/// Pieces of text fields: markup, quotes, control and invisible characters, encodings.
const PIECES: &[&str] = &[
    "a",
    "Z",
    "0",
    "9",
    " ",
    "%",
    "%00",
    "%ZZ",
    "%E2%80%AE",
    "%FF%FE",
    "&",
    "=",
    "+",
    ";",
    "'",
    "\"",
    "<script>",
    "\u{0}",
    "é",
    "👍",
    "\u{202E}",
    "\u{200B}",
    "\u{FEFF}",
    "../",
    "NULL",
    "-1",
    "99999999999999999999999",
    "1e9",
    "[]",
    "{}",
    "\r\n",
    "\t",
    "' OR 1=1 --",
    "request[page]",
];

impl Cases {
    pub fn new(seed: u64) -> Cases {
        Cases(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A string of random length drawn from awkward pieces; now and then a huge one.
    pub fn text(&mut self) -> String {
        if self.one_in(40) {
            return "x".repeat(60 * 1024);
        }
        let length = self.below(40);
        (0..length).map(|_| self.pick(PIECES)).collect()
    }

    /// An id as it would stand in a path or a field.
    pub fn id(&mut self) -> String {
        match self.below(8) {
            0 => "7".repeat(8 * 1024),
            1 => self.text().replace('/', "%2F"),
            2 | 3 => (self.next() % 40).to_string(),
            _ => self.pick(IDS).to_owned(),
        }
    }

    /// Random bytes, invalid UTF-8 included.
    pub fn bytes(&mut self, at_most: usize) -> Vec<u8> {
        let length = self.below(at_most + 1);
        (0..length).map(|_| (self.next() >> 24) as u8).collect()
    }

    /// A header value reqwest will send: printable bytes and high (obs-text) bytes.
    pub fn header_value(&mut self) -> Vec<u8> {
        if self.one_in(10) {
            return vec![b'c'; 16 * 1024];
        }
        let length = self.below(80);
        (0..length)
            .map(|_| match (self.next() >> 24) as u8 {
                byte @ (0x20..=0x7e | 0x80..=0xff) => byte,
                _ => b'%',
            })
            .collect()
    }
}
