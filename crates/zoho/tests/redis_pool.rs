//! The shared Redis pool against a real Redis: a connection in steady use goes out unchecked, and
//! one that broke is replaced after its first failed command.

mod common;

use common::{redis_pool_on, redis_url};

async fn client_id(conn: &mut impl redis::aio::ConnectionLike) -> i64 {
    redis::cmd("CLIENT")
        .arg("ID")
        .query_async(conn)
        .await
        .expect("CLIENT ID")
}

#[tokio::test]
async fn a_connection_killed_in_the_pool_fails_one_command_then_is_replaced() {
    let pool = redis_pool_on(None, 1);
    let mut conn = pool.get().await.expect("redis");
    let id = client_id(&mut conn).await;
    drop(conn);

    let mut other = outside_connection().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut other)
        .await
        .expect("CLIENT KILL");
    assert_eq!(killed, 1);

    // Handed out a moment ago, so it goes out again without a check, and its command fails.
    let mut conn = pool.get().await.expect("the pool hands the connection out");
    let error = redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .expect_err("the killed connection cannot answer");
    assert!(
        error.is_io_error() || error.is_unrecoverable_error(),
        "a connection-level failure: {error}"
    );
    drop(conn);

    // The pool dropped it: the next checkout opens a new connection.
    let mut conn = pool.get().await.expect("a new connection");
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("the new connection answers");
    assert_eq!(pong, "PONG");
    assert_ne!(client_id(&mut conn).await, id);
}

async fn outside_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("a connection outside the pool")
}

/// The last command Redis saw from client `id` (`CLIENT LIST` asked from another connection).
async fn last_command(other: &mut redis::aio::MultiplexedConnection, id: i64) -> String {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("ID")
        .arg(id)
        .query_async(other)
        .await
        .expect("CLIENT LIST");
    list.split_whitespace()
        .find_map(|field| field.strip_prefix("cmd="))
        .expect("a cmd field")
        .to_owned()
}

#[tokio::test]
async fn a_connection_in_steady_use_goes_out_without_a_check() {
    let pool = redis_pool_on(None, 1);
    let mut other = outside_connection().await;
    let mut conn = pool.get().await.expect("redis");
    let id = client_id(&mut conn).await;
    drop(conn);
    for round in 0..5 {
        let conn = pool.get().await.expect("redis");
        // Whatever the checkout sent would be this connection's last command now.
        let last = last_command(&mut other, id).await;
        assert_ne!(
            last, "ping",
            "checkout {round} checked a connection used a moment ago"
        );
        let mut conn = conn;
        let () = redis::cmd("SET")
            .arg(format!("pledgesync-test:pool:{id}"))
            .arg(round)
            .arg("PX")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .expect("SET");
    }
}
