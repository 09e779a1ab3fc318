use pledgesync_tests::binary;

const BINARIES: [&str; 3] = [
    "pledgesync-scheduler",
    "pledgesync-fetcher",
    "pledgesync-sink",
];
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn valid_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PLEDGESYNC__SECURITY__ENCRYPTION_KEY", KEY),
        ("PLEDGESYNC__API__TOKENS", "test-token-0123456789"),
    ]
}

#[test]
fn every_binary_answers_help() -> anyhow::Result<()> {
    for name in BINARIES {
        let output = binary(name)?.run(&["--help"], &[])?;
        assert!(output.status.success(), "{name} --help failed");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("--config"),
            "{name} --help does not mention --config: {text}"
        );
    }
    Ok(())
}

#[test]
fn a_valid_configuration_passes_the_check() -> anyhow::Result<()> {
    for name in BINARIES {
        let output = binary(name)?.run(&["--check-config"], &valid_env())?;
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[test]
fn a_bad_value_fails_fast_naming_the_key() -> anyhow::Result<()> {
    for name in BINARIES {
        let mut env = valid_env();
        env.push(("PLEDGESYNC__POSTGRES__URL", "mysql://root:hunter2@db/x"));
        let output = binary(name)?.run(&["--check-config"], &env)?;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{name} must exit 2 on a bad value"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("configuration key `postgres.url` is invalid: a URL with scheme postgres or postgresql"),
            "{name}: {stderr}"
        );
        assert!(
            !stderr.contains("hunter2"),
            "{name} echoed a secret: {stderr}"
        );
    }
    Ok(())
}

#[test]
fn a_missing_encryption_key_is_named() -> anyhow::Result<()> {
    for name in ["pledgesync-scheduler", "pledgesync-fetcher"] {
        let output = binary(name)?.run(
            &["--check-config"],
            &[("PLEDGESYNC__API__TOKENS", "test-token-0123456789")],
        )?;
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("`security.encryption_key`"),
            "{name}: {stderr}"
        );
    }
    Ok(())
}

#[test]
fn a_config_file_is_read_and_unknown_keys_refused() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("pledgesync-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[rabbitmq]\nprefetch = 8\n[api]\nlisten = \"127.0.0.1:0\"\n",
    )?;
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[rabbitmq]\nprefech = 8\n")?;
    for name in BINARIES {
        let bin = binary(name)?;
        let output = bin.run(
            &[
                "--config",
                good.to_str().unwrap_or_default(),
                "--check-config",
            ],
            &valid_env(),
        )?;
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let output = bin.run(
            &[
                "--config",
                bad.to_str().unwrap_or_default(),
                "--check-config",
            ],
            &valid_env(),
        )?;
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("prefech"), "{name}: {stderr}");
    }
    let missing = bin_missing_file()?;
    assert!(
        missing.contains("configuration could not be read"),
        "{missing}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn bin_missing_file() -> anyhow::Result<String> {
    let output = binary("pledgesync-sink")?.run(
        &["--config", "/nonexistent/pledgesync.toml", "--check-config"],
        &[],
    )?;
    assert_eq!(output.status.code(), Some(2));
    Ok(String::from_utf8_lossy(&output.stderr).into_owned())
}
