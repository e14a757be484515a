//! The command's error type and its mapping to exit codes.
//!
//! Exit codes: 0 success (also a closed output pipe or Ctrl-C in `tail`),
//! 1 runtime error (bus not found, exists, full, permission denied, I/O),
//! 2 usage error (bad arguments, size units, modes, names, patterns, regexes,
//! out-of-range configuration).

use std::fmt;
use std::io;

/// Exit code for runtime errors.
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code for usage errors.
pub const EXIT_USAGE: i32 = 2;

/// Why a command stopped early.
#[derive(Debug)]
pub enum CliError {
    /// Print `message` on one line and exit with `code`.
    Fail {
        /// Exit code.
        code: i32,
        /// The one-line message.
        message: String,
    },
    /// Stop quietly with status 0 (the reader of our output went away).
    Quiet,
}

impl CliError {
    /// A runtime error (exit code 1).
    pub fn runtime(message: impl Into<String>) -> CliError {
        CliError::Fail {
            code: EXIT_RUNTIME,
            message: message.into(),
        }
    }

    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::Fail {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Fail { code, .. } => *code,
            CliError::Quiet => 0,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Fail { message, .. } => f.write_str(message),
            CliError::Quiet => f.write_str("output closed"),
        }
    }
}

impl From<shmbus::Error> for CliError {
    fn from(e: shmbus::Error) -> CliError {
        use shmbus::Error as E;
        let e = match e {
            E::Filter(f) => return f.into(),
            other => other,
        };
        let usage = matches!(e, E::InvalidName { .. } | E::Config { .. } | E::TooLarge { .. });
        let message = one_line(&e.to_string());
        if usage {
            CliError::usage(message)
        } else {
            CliError::runtime(message)
        }
    }
}

impl From<shmbus::FilterError> for CliError {
    /// Regex errors from the `regex` crate span several lines (the pattern
    /// with a caret under the problem); keep only the final reason.
    fn from(e: shmbus::FilterError) -> CliError {
        match e {
            shmbus::FilterError::InvalidRegex { regex, reason } => {
                let last = reason.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                let last = last.trim().trim_start_matches("error: ");
                CliError::usage(format!("invalid regex {regex:?}: {last}"))
            }
            other => CliError::usage(one_line(&other.to_string())),
        }
    }
}

/// Join the lines of a message into one.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl From<io::Error> for CliError {
    /// A closed pipe (`EPIPE`) on output is a quiet stop; anything else is a
    /// runtime error.
    fn from(e: io::Error) -> CliError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CliError::Quiet
        } else {
            CliError::runtime(format!("I/O error: {e}"))
        }
    }
}

/// Result alias for commands.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_a_runtime_error() {
        let e = CliError::from(shmbus::Error::NotFound { name: "x".into() });
        assert_eq!(e.exit_code(), EXIT_RUNTIME);
        assert_eq!(e.to_string(), "bus \"x\" not found");
    }

    #[test]
    fn bad_pattern_is_a_usage_error() {
        let e = CliError::from(shmbus::Filter::try_topic("a.#.b").unwrap_err());
        assert_eq!(e.exit_code(), EXIT_USAGE);
        assert!(e.to_string().contains("a.#.b"));
    }

    #[test]
    fn multi_line_regex_errors_become_one_line() {
        let e = CliError::from(shmbus::Filter::try_regex("(").unwrap_err());
        let text = e.to_string();
        assert_eq!(e.exit_code(), EXIT_USAGE);
        assert!(!text.contains('\n'), "{text}");
        assert!(text.starts_with("invalid regex \"(\": "), "{text}");
        assert!(text.contains("unclosed group"), "{text}");
    }

    #[test]
    fn broken_pipe_is_quiet_and_exits_zero() {
        let e = CliError::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(e, CliError::Quiet));
        assert_eq!(e.exit_code(), 0);
        let other = CliError::from(io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(other.exit_code(), EXIT_RUNTIME);
    }
}
