//! The vocabulary synthetic records are made of: names (a fifth of them non-ASCII), reserved email
//! domains, typos, countries as people type them, companies, descriptions, tags.

/// `(display, ASCII slug for email local parts)`.
pub type Name = (&'static str, &'static str);

/// First names; about a fifth are non-ASCII (accents, Cyrillic, Greek, CJK).
#[rustfmt::skip]
pub const FIRST_NAMES: &[Name] = &[
    ("Anna", "anna"), ("Ben", "ben"), ("Chloé", "chloe"), ("David", "david"), ("Emma", "emma"),
    ("Felix", "felix"), ("Grace", "grace"), ("Hannah", "hannah"), ("Isaac", "isaac"),
    ("James", "james"), ("Kate", "kate"), ("Liam", "liam"), ("Mia", "mia"), ("Noah", "noah"),
    ("Olivia", "olivia"), ("Paul", "paul"), ("Quinn", "quinn"), ("Ruby", "ruby"),
    ("Sam", "sam"), ("Tom", "tom"), ("Uma", "uma"), ("Victor", "victor"), ("Will", "will"),
    ("Yara", "yara"), ("Zoë", "zoe"), ("José", "jose"), ("Søren", "soren"), ("Łucja", "lucja"),
    ("Renée", "renee"), ("Günter", "gunter"), ("Tomás", "tomas"), ("Émile", "emile"),
    ("Александр", "aleksandr"), ("Ελένη", "eleni"), ("翔太", "shota"), ("美咲", "misaki"),
    ("伟", "wei"), ("Fatima", "fatima"), ("Priya", "priya"), ("Kwame", "kwame"),
];

/// Last names, with the same share of non-ASCII.
#[rustfmt::skip]
pub const LAST_NAMES: &[Name] = &[
    ("Smith", "smith"), ("Johnson", "johnson"), ("Brown", "brown"), ("Taylor", "taylor"),
    ("Wilson", "wilson"), ("Clark", "clark"), ("Lewis", "lewis"), ("Walker", "walker"),
    ("Hall", "hall"), ("Young", "young"), ("King", "king"), ("Wright", "wright"),
    ("Scott", "scott"), ("Green", "green"), ("Baker", "baker"), ("Adams", "adams"),
    ("Nelson", "nelson"), ("Hill", "hill"), ("Campbell", "campbell"), ("O'Brien", "obrien"),
    ("van der Berg", "vanderberg"), ("Kowalski", "kowalski"), ("Dubois", "dubois"),
    ("Rossi", "rossi"), ("Müller", "muller"), ("García", "garcia"), ("Nguyễn", "nguyen"),
    ("Søndergaard", "sondergaard"), ("Brontë", "bronte"), ("Çelik", "celik"),
    ("Øvergaard", "overgaard"), ("Đặng", "dang"), ("Иванова", "ivanova"),
    ("Παπαδόπουλος", "papadopoulos"), ("田中", "tanaka"), ("王", "wang"), ("김", "kim"),
    ("Patel", "patel"), ("Okafor", "okafor"), ("Silva", "silva"),
];

/// Reserved or test domains only, so no generated address can reach a real mailbox.
#[rustfmt::skip]
pub const DOMAINS: &[&str] = &[
    "example.com", "example.org", "example.net", "mail.example", "backers.test",
    "inbox.test", "pledge.example", "post.test",
];

/// Emails a human typed wrong.
#[rustfmt::skip]
pub const MALFORMED: &[&str] = &[
    "bob@", "not-an-email", "@example.com", "jane.doe@@example.com", "first last@example.com",
    "mary@example", "joe.example.com", "n/a", "-",
];

/// Countries as CRM users type them: names, abbreviations, native spellings.
#[rustfmt::skip]
pub const COUNTRIES: &[&str] = &[
    "United States", "United States", "United States", "USA", "U.S.", "Canada", "United Kingdom",
    "UK", "Germany", "Deutschland", "France", "India", "India", "Japan", "日本", "Brazil", "Brasil",
    "España", "Australia", "Côte d'Ivoire", "Netherlands", "Sweden", "Mexico", "México",
];

/// Companies (Leads' mandatory field, Contacts' Account_Name).
#[rustfmt::skip]
pub const COMPANIES: &[&str] = &[
    "Acme Robotics", "Globex", "Initech", "Umbrella Games", "Müller GmbH", "Soylent Studio",
    "Kōbō 株式会社", "Stark Boards", "Hooli", "Vandelay Imports", "Société Générale de Jeux",
    "Wayne Tabletop", "Tyrell Miniatures", "Cyberdyne Dice", "Oscorp Prints",
];

/// Descriptions; one is long enough to be truncated by clients that cap text.
pub const DESCRIPTIONS: &[&str] = &[
    "Met at the spring convention.",
    "Backed two previous campaigns.",
    "Prefers email; do not call before 10am.",
    "VIP — early bird tier.\nAsked about international shipping.",
    "Référé par un ami. 友人の紹介。",
    "Imported from the 2023 spreadsheet; data quality unknown. Imported from the 2023 \
     spreadsheet; data quality unknown. Imported from the 2023 spreadsheet; data quality \
     unknown. Imported from the 2023 spreadsheet; data quality unknown. Imported from the 2023 \
     spreadsheet; data quality unknown. Imported from the 2023 spreadsheet; data quality \
     unknown. Imported from the 2023 spreadsheet; data quality unknown.",
];

/// Tag names.
pub const TAGS: &[&str] = &["Backer", "VIP", "Newsletter", "Retailer", "Press"];

/// Calling codes for phone numbers.
pub const CALLING_CODES: &[&str] = &["+1", "+44", "+49", "+33", "+91", "+81", "+61", "+55"];
