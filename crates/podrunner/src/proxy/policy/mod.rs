//! What the proxy decides, pure: which fields a body may carry ([`contained`]), how resources
//! are capped ([`caps`]), which build contexts pass ([`tar`]), what a refusal says ([`refusal`]), how bodies translate between API
//! versions ([`version`]), how strictly JSON parses ([`json`]).

pub mod caps;
pub mod contained;
pub mod json;
pub mod refusal;
pub mod tar;
pub mod version;

pub use contained::Policy;
pub use refusal::{Refusal, Refused};
