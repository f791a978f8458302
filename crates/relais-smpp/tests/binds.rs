//! Binds to the SMPP server as a password guesser would, on tokio's paused clock: the time
//! each answer takes is the wait the server decided, not the machine's speed.

use std::net::{IpAddr, SocketAddr};

use relais_smpp::codec::to_bytes;
use relais_smpp::pdu::bind_pdu;
use relais_smpp::{
    Authenticator, BindMode, BindRequest, Command, CommandStatus, ServerConfig, ShortMessage,
    SmppServer, SubmitContext, SubmitHandler,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Two accounts: `shop` / `right` and `bank` / `vault`.
struct Accounts;

impl Authenticator for Accounts {
    type Principal = String;

    async fn authenticate(
        &self,
        req: &BindRequest,
        _peer: SocketAddr,
    ) -> Result<String, CommandStatus> {
        let password = match req.system_id.as_str() {
            "shop" => "right",
            "bank" => "vault",
            _ => return Err(CommandStatus::EsmeRinvsysid),
        };
        if req.password == password {
            Ok(req.system_id.clone())
        } else {
            Err(CommandStatus::EsmeRinvpaswd)
        }
    }
}

struct NoSubmits;

impl SubmitHandler<String> for NoSubmits {
    async fn submit(
        &self,
        _ctx: SubmitContext<'_, String>,
        _message: ShortMessage,
    ) -> Result<String, CommandStatus> {
        Err(CommandStatus::EsmeRsyserr)
    }
}

async fn server() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = SmppServer::new(ServerConfig::default(), Accounts, NoSubmits);
    tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Binds from `from` on a new connection; the answer's status and how long it took.
async fn bind(server: SocketAddr, from: &str, system_id: &str, password: &str) -> (u32, u128) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let pdu = bind_pdu(BindMode::Transceiver, system_id, password, "").unwrap();
    let started = tokio::time::Instant::now();
    stream
        .write_all(&to_bytes(&Command::new(CommandStatus::EsmeRok, 1, pdu)))
        .await
        .unwrap();
    let mut head = [0u8; 16];
    stream.read_exact(&mut head).await.unwrap();
    let took = started.elapsed().as_millis();
    let status = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    (status, took)
}

const OK: u32 = 0;
const WRONG_PASSWORD: u32 = 0x0E;

#[tokio::test(start_paused = true)]
async fn wrong_binds_are_answered_later_and_later_and_a_right_one_still_binds() {
    let (addr, _stop) = server().await;
    let mut waits = Vec::new();
    for _ in 0..8 {
        let (status, took) = bind(addr, "127.0.0.1", "shop", "guess").await;
        assert_eq!(status, WRONG_PASSWORD);
        waits.push(took);
    }
    assert_eq!(waits, [0, 100, 200, 400, 800, 1600, 3200, 5000]);

    // Someone else, binding to another account from another address, does not wait.
    assert_eq!(bind(addr, "127.0.0.2", "bank", "vault").await, (OK, 0));

    // The right password still binds, once the guesser's turn has come.
    assert_eq!(bind(addr, "127.0.0.1", "shop", "right").await, (OK, 5000));
    // And that success wiped the slate.
    assert_eq!(
        bind(addr, "127.0.0.1", "shop", "guess").await,
        (WRONG_PASSWORD, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn guessing_one_account_from_many_addresses_is_slowed_down_too() {
    let (addr, _stop) = server().await;
    let mut waits = Vec::new();
    for i in 1..=6 {
        let (status, took) = bind(addr, &format!("127.0.0.{i}"), "shop", "guess").await;
        assert_eq!(status, WRONG_PASSWORD);
        waits.push(took);
    }
    assert_eq!(waits, [0, 100, 200, 400, 800, 1600]);
    // The account itself is what is held back, from a fresh address too...
    assert_eq!(
        bind(addr, "127.0.0.7", "shop", "guess").await,
        (WRONG_PASSWORD, 3200)
    );
    // ...while another account binds at once.
    assert_eq!(bind(addr, "127.0.0.9", "bank", "vault").await, (OK, 0));
}
