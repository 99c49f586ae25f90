//! The domain config language: xm's Python-2 config files and xl's strict subset, evaluated
//! safely and turned into one typed [`model::DomainConfig`].

pub mod ast;
mod builtins;
pub mod devices;
pub mod disk;
pub mod error;
pub mod eval;
pub mod host;
pub mod lexer;
pub mod lint;
pub mod load;
pub mod model;
pub mod parser;
pub mod source;
pub mod spec;
pub mod value;

pub use error::ConfigError;
pub use load::{load, load_text, LoadOptions, LoadedConfig};
pub use model::DomainConfig;
