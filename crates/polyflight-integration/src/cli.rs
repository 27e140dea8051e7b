//! The command line of both binaries, in the gflags style Arrow C++'s integration binaries use:
//! `-port=0`, `-port 0`, `--port 0` and `--port=0` all mean the same. Unknown flags are an
//! error that names them, so a typo never silently runs the wrong test.

use crate::failure::{Failure, Outcome};

/// The flags either binary accepts (each binary reads the ones it needs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// `-host`: the server host the client connects to (default `localhost`).
    pub host: Option<String>,
    /// `-port`: the TCP port (server: 0 picks a free one).
    pub port: Option<u16>,
    /// `-scenario`: a named scenario; none means the JSON round trip.
    pub scenario: Option<String>,
    /// `-path`: the integration JSON file of the round trip (client).
    pub path: Option<String>,
    /// `-uri`: the full location to listen on or connect to, any polyflight scheme.
    pub uri: Option<String>,
    /// `-transport`: a scheme (`grpc`, `grpc+tcp`, `grpc+tls`, `ucx`) combined with host and
    /// port, for when no `-uri` is given.
    pub transport: Option<String>,
    /// `-tls_cert` / `-tls_key`: the server's certificate chain and key (PEM files).
    pub tls_cert: Option<String>,
    /// See [`Args::tls_cert`].
    pub tls_key: Option<String>,
    /// `-tls_ca_out`: where a `grpc+tls` server without `-tls_cert` writes the CA certificate
    /// it minted, for the client's `-tls_root_ca`.
    pub tls_ca_out: Option<String>,
    /// `-tls_root_ca`: the CA certificate (PEM file) a `grpc+tls` client trusts.
    pub tls_root_ca: Option<String>,
}

const FLAGS: &[&str] = &[
    "host",
    "port",
    "scenario",
    "path",
    "uri",
    "transport",
    "tls_cert",
    "tls_key",
    "tls_ca_out",
    "tls_root_ca",
];

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse<I, S>(args: I) -> Outcome<Args>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut parsed = Args::default();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let flag = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .ok_or_else(|| Failure::Usage(format!("unexpected argument {arg:?}")))?;
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => {
                    let value = args
                        .next()
                        .ok_or_else(|| Failure::Usage(format!("flag -{flag} needs a value")))?;
                    (flag.to_string(), value)
                }
            };
            // gflags treats `-tls-cert` and `-tls_cert` alike.
            let name = name.replace('-', "_");
            if !FLAGS.contains(&name.as_str()) {
                return Err(Failure::Usage(format!(
                    "unknown flag -{name}; known: -{}",
                    FLAGS.join(", -")
                )));
            }
            parsed.set(&name, value)?;
        }
        Ok(parsed)
    }

    fn set(&mut self, name: &str, value: String) -> Outcome {
        let slot = match name {
            "host" => &mut self.host,
            "port" => {
                let port = value
                    .parse()
                    .map_err(|_| Failure::Usage(format!("-port {value:?} is not a port number")))?;
                self.port = Some(port);
                return Ok(());
            }
            "scenario" => &mut self.scenario,
            "path" => &mut self.path,
            "uri" => &mut self.uri,
            "transport" => &mut self.transport,
            "tls_cert" => &mut self.tls_cert,
            "tls_key" => &mut self.tls_key,
            "tls_ca_out" => &mut self.tls_ca_out,
            "tls_root_ca" => &mut self.tls_root_ca,
            other => return Err(Failure::Usage(format!("unknown flag -{other}"))),
        };
        *slot = Some(value);
        Ok(())
    }

    /// The scenario name, with an empty `-scenario ""` meaning none (as in Arrow C++).
    pub fn scenario_name(&self) -> Option<&str> {
        self.scenario.as_deref().filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_spelling_arrow_peers_use_is_accepted() {
        for line in [
            vec!["-port=0", "-scenario", "ordered"],
            vec!["--port", "0", "--scenario", "ordered"],
            vec!["-port", "0", "-scenario=ordered"],
            vec!["--port=0", "--scenario=ordered"],
        ] {
            let args = Args::parse(line.clone()).unwrap();
            assert_eq!(args.port, Some(0), "{line:?}");
            assert_eq!(args.scenario_name(), Some("ordered"), "{line:?}");
        }
        let args = Args::parse(["-host", "localhost", "-port=31337", "-path", "a.json"]).unwrap();
        assert_eq!(args.host.as_deref(), Some("localhost"));
        assert_eq!(args.port, Some(31337));
        assert_eq!(args.path.as_deref(), Some("a.json"));
        let args = Args::parse(["-tls-root-ca", "ca.pem", "-scenario", ""]).unwrap();
        assert_eq!(args.tls_root_ca.as_deref(), Some("ca.pem"));
        assert_eq!(args.scenario_name(), None);
    }

    #[test]
    fn mistakes_are_named() {
        let err = Args::parse(["-prot=1"]).unwrap_err().to_string();
        assert!(err.contains("unknown flag -prot"), "{err}");
        let err = Args::parse(["-port", "x"]).unwrap_err().to_string();
        assert!(err.contains("not a port number"), "{err}");
        let err = Args::parse(["-port"]).unwrap_err().to_string();
        assert!(err.contains("needs a value"), "{err}");
        let err = Args::parse(["stray"]).unwrap_err().to_string();
        assert!(err.contains("unexpected argument"), "{err}");
    }
}
