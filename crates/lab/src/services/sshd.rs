//! `--real-ssh`: the machine's own OpenSSH server behind door 22 of the
//! internet, with throwaway keys, and the real `ssh` client in the house.
//!
//! Everything lives in a private temporary directory (host key, client key,
//! `authorized_keys`, `sshd_config`) removed afterwards; sshd runs in the
//! foreground as a child of the lab inside the internet namespace, with
//! password logins off and only the throwaway client key accepted.

use std::fs;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::plan::addr::{ports, Role};

/// Where OpenSSH's programs are, when installed.
#[derive(Debug, Clone)]
pub(crate) struct OpenSsh {
    sshd: PathBuf,
    /// The client.
    pub(crate) ssh: PathBuf,
    keygen: PathBuf,
    /// socat, when installed: the client's ProxyCommand through an HTTP
    /// CONNECT proxy.
    pub(crate) socat: Option<PathBuf>,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // sshd lives in sbin, which a user's PATH may lack.
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from));
    names
        .iter()
        .find_map(|n| dirs.iter().map(|d| d.join(n)).find(|p| p.is_file()))
}

impl OpenSsh {
    /// OpenSSH's server, client and key generator, if all are installed.
    pub(crate) fn find() -> Option<OpenSsh> {
        Some(OpenSsh {
            sshd: find(&["sshd"])?,
            ssh: find(&["ssh"])?,
            keygen: find(&["ssh-keygen"])?,
            socat: find(&["socat"]),
        })
    }

    /// `ssh -o ProxyCommand=…` reaching `%h:%p` through the HTTP CONNECT
    /// proxy at `proxy`, as a user behind one would (socat, when installed).
    pub(crate) fn proxy_command(&self, proxy: std::net::SocketAddrV4) -> Option<String> {
        let socat = self.socat.as_ref()?;
        Some(format!(
            "ProxyCommand={} - PROXY:{}:%h:%p,proxyport={}",
            socat.display(),
            proxy.ip(),
            proxy.port()
        ))
    }
}

/// A running sshd and its throwaway keys.
#[derive(Debug)]
pub(crate) struct RealSshd {
    child: Option<Child>,
    dir: PathBuf,
    made_privsep_dir: bool,
    /// The client's private key.
    pub(crate) client_key: PathBuf,
}

const START_TIMEOUT: Duration = Duration::from_secs(5);
const PRIVSEP_DIR: &str = "/run/sshd";

fn keygen(ssh: &OpenSsh, file: &Path) -> io::Result<()> {
    let out = Command::new(&ssh.keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "onedoor-lab", "-f"])
        .arg(file)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl RealSshd {
    /// Start sshd on door 22 of the lab's internet and wait until it
    /// listens.
    pub(crate) fn start(lab: &Lab, ssh: &OpenSsh) -> io::Result<RealSshd> {
        let dir = std::env::temp_dir().join(format!(
            "onedoor-lab-ssh-{}-{}",
            std::process::id(),
            lab.plan().instance
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let mut me = RealSshd {
            child: None,
            dir: dir.clone(),
            made_privsep_dir: false,
            client_key: dir.join("client_key"),
        };
        keygen(ssh, &dir.join("host_key"))?;
        keygen(ssh, &me.client_key)?;
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))?;
        let config = format!(
            "Port {port}\n\
             ListenAddress 0.0.0.0\n\
             HostKey {dir}/host_key\n\
             AuthorizedKeysFile {dir}/authorized_keys\n\
             PidFile none\n\
             PermitRootLogin prohibit-password\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             PrintMotd no\n",
            port = ports::LIBRARY,
            dir = dir.display()
        );
        fs::write(dir.join("sshd_config"), config)?;
        if !Path::new(PRIVSEP_DIR).exists() {
            fs::DirBuilder::new().mode(0o755).create(PRIVSEP_DIR)?;
            fs::set_permissions(PRIVSEP_DIR, fs::Permissions::from_mode(0o755))?;
            me.made_privsep_dir = true;
        }
        let mut child = lab
            .command(Role::Internet, &ssh.sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take();
        me.child = Some(child);
        let door: SocketAddr = (lab.plan().internet, ports::LIBRARY).into();
        let started = Instant::now();
        loop {
            if let Some(status) = me.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let mut msg = String::new();
                if let Some(mut e) = stderr {
                    let _ = e.read_to_string(&mut msg);
                }
                return Err(io::Error::other(format!(
                    "sshd exited ({status}): {}",
                    msg.trim()
                )));
            }
            let up = lab.run_in(Role::Internet, || {
                std::net::TcpStream::connect_timeout(&door, Duration::from_millis(200)).is_ok()
            })?;
            if up {
                return Ok(me);
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(io::Error::other("sshd did not listen within 5 s"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The `ssh` command line (after the program) that logs in to `port` of
    /// `host` with the throwaway key and runs `echo`.
    /// `via`: an `-o` option to reach the server another way (a
    /// ProxyCommand).
    pub(crate) fn login_args(
        &self,
        host: std::net::Ipv4Addr,
        port: u16,
        greeting: &str,
        via: Option<String>,
    ) -> Vec<String> {
        let via = via.into_iter().flat_map(|o| ["-o".to_owned(), o]);
        let mut args: Vec<String> = vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            self.client_key.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "ConnectTimeout=2".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ];
        args.extend(via);
        args.extend([format!("root@{host}"), format!("echo {greeting}")]);
        args
    }
}

impl Drop for RealSshd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
        if self.made_privsep_dir {
            let _ = fs::remove_dir(PRIVSEP_DIR);
        }
    }
}
