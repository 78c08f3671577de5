//! The one error surface: every failure that reaches the user is an [`Error`], which
//! knows its [`Class`] (the exit code: 1 checks failed, 2 bad input or usage,
//! 3 environment such as an unreachable engine or registry or a full disk) and an
//! optional hint (what to do about it). `cli` renders it: `error: <message>`, one
//! `caused by:` line per source, then `hint: <hint>`; and exits with the class's code.
//!
//! How an error gets its class and hint: each module's error enum implements
//! [`Classify`] next to its definition (`class()` is required, `hint()` defaults to none;
//! a variant wrapping another module's error delegates to it). [`Error`] is built only
//! from a `Classify` type (`From`/`?`, [`Error::new`], or [`Context`]), so an error type
//! without a class cannot reach `cli`: forgetting one is a compile error, not a silent
//! exit 2. The class and hint are taken from the outermost typed error when it is
//! converted; context added afterwards (`.context("Cannot read ...")`) keeps them.
//! Code that builds an error from a message states its class: [`Error::input`],
//! [`Error::failed`], [`Error::environment`] (optionally `.with_hint(...)`).
//! Foreign error types that code turns into an `Error` directly (I/O, JSON, a joined
//! task) are classed here, as bad input, which is what they were before.
//!
//! Library modules depend on this module, never on `cli`. Hints are not part of a
//! message's `Display`, so `to_string()` of an error is the message alone.

// The one place that wraps anyhow; everywhere else uses `Error` (clippy.toml).
#![allow(clippy::disallowed_types)]

use std::fmt;

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

/// Implemented by every error type that may reach the user (each module's error enum,
/// next to its definition).
pub trait Classify {
    /// The exit class.
    fn class(&self) -> Class;
    /// What the user can do about it; printed after the message as `hint: ...`.
    fn hint(&self) -> Option<String> {
        None
    }
}

/// An error that carries its class (and hint) explicitly; for code that builds an error
/// from a message. Usually built through [`Error::input`] and friends.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    pub class: Class,
    pub message: String,
    pub hint: Option<String>,
}

impl Classified {
    pub fn input(message: impl Into<String>) -> Self {
        Classified {
            class: Class::Input,
            message: message.into(),
            hint: None,
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Classified {
            class: Class::Failed,
            message: message.into(),
            hint: None,
        }
    }
    pub fn environment(message: impl Into<String>) -> Self {
        Classified {
            class: Class::Environment,
            message: message.into(),
            hint: None,
        }
    }
    /// The same error with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl Classify for Classified {
    fn class(&self) -> Class {
        self.class
    }
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// Files that cannot be read, written or parsed where a command handles them itself.
impl Classify for std::io::Error {
    fn class(&self) -> Class {
        Class::Input
    }
}

impl Classify for serde_json::Error {
    fn class(&self) -> Class {
        Class::Input
    }
}

impl Classify for tokio::task::JoinError {
    fn class(&self) -> Class {
        Class::Input
    }
}

/// The top-level error: a message chain (outermost context first), its class and hint.
pub struct Error {
    inner: anyhow::Error,
    class: Class,
    hint: Option<String>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// From a classified error; its class and hint become the error's.
    pub fn new<E>(error: E) -> Self
    where
        E: Classify + std::error::Error + Send + Sync + 'static,
    {
        let class = error.class();
        let hint = error.hint();
        Error {
            inner: anyhow::Error::new(error),
            class,
            hint,
        }
    }

    /// Bad input or usage (exit 2).
    pub fn input(message: impl Into<String>) -> Self {
        Error::new(Classified::input(message))
    }

    /// A check failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Error::new(Classified::failed(message))
    }

    /// The environment (exit 3).
    pub fn environment(message: impl Into<String>) -> Self {
        Error::new(Classified::environment(message))
    }

    /// The same error with a hint (replacing any it had).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Wrap in a message of context; the class and hint stay.
    pub fn context<C>(self, context: C) -> Self
    where
        C: fmt::Display + Send + Sync + 'static,
    {
        Error {
            inner: self.inner.context(context),
            class: self.class,
            hint: self.hint,
        }
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn exit_code(&self) -> u8 {
        self.class.exit_code()
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The messages, outermost context first, then each source.
    pub fn chain(&self) -> anyhow::Chain<'_> {
        self.inner.chain()
    }

    /// The first error of the chain of type `E`, if any.
    pub fn downcast_ref<E>(&self) -> Option<&E>
    where
        E: fmt::Display + fmt::Debug + Send + Sync + 'static,
    {
        self.inner.downcast_ref::<E>()
    }
}

impl<E> From<E> for Error
where
    E: Classify + std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        Error::new(error)
    }
}

/// The outermost message; `{:#}` gives the whole chain, `: `-separated.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)?;
        write!(f, "\n\nclass: {:?}", self.class)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// `.context(...)` and `.with_context(|| ...)` on results whose error is classified
/// (or already an [`Error`]): the class and hint stay, the message gains a layer.
pub trait Context<T> {
    fn context<C>(self, context: C) -> Result<T>
    where
        C: fmt::Display + Send + Sync + 'static;

    fn with_context<C, F>(self, f: F) -> Result<T>
    where
        C: fmt::Display + Send + Sync + 'static,
        F: FnOnce() -> C;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context<C>(self, context: C) -> Result<T>
    where
        C: fmt::Display + Send + Sync + 'static,
    {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C, F>(self, f: F) -> Result<T>
    where
        C: fmt::Display + Send + Sync + 'static,
        F: FnOnce() -> C,
    {
        self.map_err(|e| e.into().context(f()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    impl Classify for Inner {
        fn class(&self) -> Class {
            Class::Environment
        }
        fn hint(&self) -> Option<String> {
            Some("do this".into())
        }
    }

    fn fails() -> std::result::Result<(), Inner> {
        Err(Inner)
    }

    #[test]
    fn context_keeps_class_and_hint() {
        let e = fails().context("outer").unwrap_err();
        assert_eq!(e.class(), Class::Environment);
        assert_eq!(e.exit_code(), 3);
        assert_eq!(e.hint(), Some("do this"));
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        assert_eq!(chain, ["outer", "inner"]);
        assert_eq!(e.to_string(), "outer");
        assert!(e.downcast_ref::<Inner>().is_some());
    }

    #[test]
    fn built_from_a_message_states_its_class() {
        let e = Error::failed("a check failed").with_hint("look");
        assert_eq!((e.class(), e.hint()), (Class::Failed, Some("look")));
        let e: Error = Classified::input("bad").with_hint("fix").into();
        assert_eq!((e.exit_code(), e.hint()), (2, Some("fix")));
        assert_eq!(Error::environment("gone").exit_code(), 3);
    }
}
