//! Broker and store URLs carry passwords; this keeps them out of logs and `Debug` output.

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`; other forms unchanged.
pub(crate) fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_only_the_password() {
        assert_eq!(
            redact_password("redis://:pw@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(redact_password("redis://127.0.0.1"), "redis://127.0.0.1");
        assert_eq!(redact_password("amqp://guest@h/%2f"), "amqp://guest@h/%2f");
    }
}
