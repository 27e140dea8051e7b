//! Logins for `serve --auth-basic FILE`: a file of `user:hash` lines, the hashes argon2id PHC
//! strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`, RustCrypto's `argon2` with its default
//! parameters), checked by polyflight's [`BasicAuthenticator`]; and `polyflight hash-password
//! USER`, which makes such a line. Blank lines and lines starting with `#` are ignored.

use crate::args::HashPasswordArgs;
use crate::fail::{Failure, Outcome};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use polyflight::BasicAuthenticator;
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::sync::Arc;

/// A hash no password matches in practice, checked for unknown users so that a login with a
/// user name that does not exist takes as long as one with a wrong password (the time does not
/// tell which user names exist). Its salt and digest are arbitrary: it is the hash of no known
/// password.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$cG9seWZsaWdodGRlY295$\
                          2KdBq0lGvGRVl8bsDKTUhH7Ye1Yk8PHDWGhW8Uw1VtE";

/// The users of a password file and their hashes.
#[derive(Debug, Default)]
pub struct PasswordFile {
    users: HashMap<String, String>,
}

impl PasswordFile {
    /// Reads and checks a password file: every line `user:hash` with a PHC hash of an
    /// algorithm this build verifies. A file that cannot be read or has a bad line is a bad
    /// input file, naming the line.
    pub fn load(path: &Path) -> Outcome<PasswordFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| Failure::bad_input(format!("--auth-basic {}: {err}", path.display())))?;
        let file = Self::parse(&text).map_err(|(line, why)| {
            Failure::bad_input(format!(
                "--auth-basic {} line {line}: {why}",
                path.display()
            ))
        })?;
        if file.users.is_empty() {
            return Err(Failure::bad_input(format!(
                "--auth-basic {}: no users (add lines made with `polyflight hash-password USER`)",
                path.display()
            )));
        }
        Ok(file)
    }

    /// The users of a password file's text, or the number of the first bad line and why.
    pub fn parse(text: &str) -> Result<PasswordFile, (usize, String)> {
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line.split_once(':').ok_or_else(|| {
                (
                    number,
                    "not `user:hash` (make lines with `polyflight hash-password USER`)".to_string(),
                )
            })?;
            check_user(user).map_err(|why| (number, why))?;
            let parsed = PasswordHash::new(hash).map_err(|err| {
                (
                    number,
                    format!("the hash of {user:?} is not a PHC string: {err}"),
                )
            })?;
            if !parsed.algorithm.as_str().starts_with("argon2") {
                return Err((
                    number,
                    format!(
                        "the hash of {user:?} is {}, not argon2",
                        parsed.algorithm.as_str()
                    ),
                ));
            }
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err((number, format!("{user:?} appears twice")));
            }
        }
        Ok(PasswordFile { users })
    }

    /// Whether `password` is `user`'s.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let argon2 = Argon2::default();
        match self.users.get(user) {
            Some(hash) => argon2
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok(),
            None => {
                let _ = argon2.verify_password(password.as_bytes(), DECOY_HASH);
                false
            }
        }
    }

    /// An authenticator accepting these users (Basic → Bearer and handshake tokens).
    pub fn authenticator(self) -> Arc<BasicAuthenticator> {
        BasicAuthenticator::new(move |user: &str, password: &str| self.check(user, password))
    }
}

fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the user name is empty".into());
    }
    if user
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err(format!(
            "user name {user:?} has a space, a control character or a ':'"
        ));
    }
    Ok(())
}

/// An argon2id PHC string of `password`, with a fresh random salt.
pub fn hash(password: &str) -> Outcome<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| Failure::other(format!("hashing the password: {err}")))
}

/// `polyflight hash-password USER`: reads the password (asked twice on a terminal, else the
/// first line of stdin) and prints `USER:HASH`.
pub fn hash_password(args: HashPasswordArgs) -> Outcome {
    check_user(&args.user).map_err(Failure::usage)?;
    let password = if std::io::stdin().is_terminal() {
        let term = console::Term::stderr();
        let ask = |prompt: &str| {
            term.write_str(prompt)
                .and_then(|()| term.read_secure_line())
                .map_err(|err| Failure::usage(format!("cannot read the password: {err}")))
        };
        let first = ask(&format!("password for {}: ", args.user))?;
        let again = ask("again: ")?;
        if first != again {
            return Err(Failure::usage("the passwords differ"));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|err| Failure::usage(format!("cannot read the password from stdin: {err}")))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.is_empty() {
        return Err(Failure::usage("the password is empty"));
    }
    println!("{}:{}", args.user, hash(&password)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_files_parse() {
        let line = format!("alice:{}", hash("s3cret").unwrap());
        let file = PasswordFile::parse(&format!("# users\n\n{line}\n")).unwrap();
        assert!(file.check("alice", "s3cret"));
        assert!(!file.check("alice", "wrong"));
        assert!(!file.check("bob", "s3cret"));
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
        assert_eq!(PasswordFile::parse("alice").unwrap_err().0, 1);
        assert_eq!(PasswordFile::parse("\nalice:plain").unwrap_err().0, 2);
        assert!(PasswordFile::parse(&format!("{line}\n{line}"))
            .unwrap_err()
            .1
            .contains("twice"));
    }
}
