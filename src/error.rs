//! Error classes and exit codes shared by every command: 0 ok, 1 checks failed,
//! 2 bad input or usage, 3 environment (engine or registry unreachable).
//! Module error enums implement `Classify`; `cli` maps the class to the exit code.

/// What kind of failure an error is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A check found a problem (verify, check): exit 1.
    Failed,
    /// Bad input or usage (files, references, bundles, flags): exit 2.
    Input,
    /// The environment: engine or registry unreachable, disk full: exit 3.
    Environment,
}

impl Class {
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Failed => 1,
            Class::Input => 2,
            Class::Environment => 3,
        }
    }
}

/// Implemented by every module's error type.
pub trait Classify {
    fn class(&self) -> Class;
}

/// An error that carries its class explicitly; for `cli` code that builds errors with anyhow.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    pub class: Class,
    pub message: String,
}

impl Classified {
    pub fn input(message: impl Into<String>) -> Self {
        Classified { class: Class::Input, message: message.into() }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Classified { class: Class::Failed, message: message.into() }
    }
    pub fn environment(message: impl Into<String>) -> Self {
        Classified { class: Class::Environment, message: message.into() }
    }
}

impl Classify for Classified {
    fn class(&self) -> Class {
        self.class
    }
}

