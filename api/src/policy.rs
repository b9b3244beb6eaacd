//! Authority policy: which Matrix users an authority may enroll.
//!
//! An authority record lists the server names its users live on and glob
//! patterns on their localparts (`*` matches any run of characters,
//! everything else literally). Both must match; the issuing CA's own ARC.11
//! list must permit the server as well (checked when issuing).

use govtrust_verifier::UserId;

/// Why a user is outside an authority's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyDenial {
    /// The user's server is not one of the authority's.
    Server(String),
    /// No localpart pattern matches.
    User(String),
}

/// Checks `user` against an authority's servers and localpart patterns.
pub fn check_user(
    user: &UserId,
    servers: &[String],
    patterns: &[String],
) -> Result<(), PolicyDenial> {
    if !servers.iter().any(|s| s == user.server_name()) {
        return Err(PolicyDenial::Server(user.server_name().to_owned()));
    }
    if !patterns.iter().any(|p| glob_match(p, user.localpart())) {
        return Err(PolicyDenial::User(user.to_string()));
    }
    Ok(())
}

/// Validates a localpart pattern: non-empty, printable ASCII, no `:`.
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.len() > 255 {
        return Err(format!(
            "user pattern {pattern:?} must be 1 to 255 characters"
        ));
    }
    if !pattern
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b':')
    {
        return Err(format!(
            "user pattern {pattern:?} may only use printable ASCII without ':'"
        ));
    }
    Ok(())
}

/// `*`-only glob matching, linear time (no backtracking blow-up).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing() {
        assert!(glob_match("office.*", "office.berlin"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("office.*", "officeberlin"));
        assert!(!glob_match("office", "office.berlin"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("a*b", "a"));
        // Pathological pattern stays fast.
        assert!(!glob_match(&"*a".repeat(50), &"a".repeat(49)));
    }

    #[test]
    fn users() {
        let u = UserId::parse("@office.berlin:id.bund.example").unwrap();
        let servers = vec!["id.bund.example".to_owned()];
        assert!(check_user(&u, &servers, &["office.*".into()]).is_ok());
        assert_eq!(
            check_user(&u, &servers, &["bot.*".into()]),
            Err(PolicyDenial::User(u.to_string()))
        );
        assert!(matches!(
            check_user(&u, &["other.example".into()], &["*".into()]),
            Err(PolicyDenial::Server(_))
        ));
    }
}
