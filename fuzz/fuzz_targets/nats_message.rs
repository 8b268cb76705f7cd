//! The NATS filing message decoder: any payload on any filing subject is decoded or refused with a reason,
//! never a panic; what it accepts holds no control character, and its symbol and key pass the one rule of each
//! (`pdscore_actors::domain`) again.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SUBJECTS: [&str; 3] = [
    "p.filings.demo.annual",
    "p.filings.demo.quarterly",
    "p.filings.de\u{0}mo.annual",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let subject = SUBJECTS[usize::from(selector) % SUBJECTS.len()];
    match pdscore_nats::message::decode("p", subject, payload) {
        Ok(decoded) => {
            assert_eq!(pdscore_actors::text::json_control_character(payload), None);
            let symbol = decoded.company_symbol.as_str();
            assert!(pdscore_actors::text::control_character(symbol).is_none());
            assert_eq!(
                pdscore_actors::domain::CompanySymbol::parse(symbol).as_ref(),
                Ok(&decoded.company_symbol)
            );
            if let Some(key) = &decoded.filing_id {
                assert!(pdscore_actors::domain::FilingKey::parse(key.as_str()).is_ok());
            }
        }
        Err(reason) => assert!(!reason.code.is_empty() && !reason.message.is_empty()),
    }
});
