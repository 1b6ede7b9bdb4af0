// What OpenSSL itself keeps per idle server session: N in-memory TLS handshakes (memory BIOs,
// the test PKI, SSL_MODE_RELEASE_BUFFERS as swift-ws sets it), each followed by one small
// record both ways; the server sessions are kept, the client ones freed. Prints malloc's
// in-use growth per kept session.
//
//   cc -O2 -o /tmp/openssl_session_memory Benchmarks/openssl_session_memory.c -lssl -lcrypto
//   /tmp/openssl_session_memory 2000        (from the repository root)
#include <openssl/ssl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

static void pump(BIO *from, BIO *to) {
    char buffer[16384];
    int n;
    while ((n = BIO_read(from, buffer, sizeof buffer)) > 0) BIO_write(to, buffer, n);
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 2000;
    SSL_CTX *server = SSL_CTX_new(TLS_server_method()), *client = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_use_certificate_chain_file(server, "Fixtures/tls/server.pem") != 1 ||
        SSL_CTX_use_PrivateKey_file(server, "Fixtures/tls/server-key.pem", SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "run from the repository root (Fixtures/tls)\n");
        return 1;
    }
    SSL_CTX_set_mode(server, SSL_MODE_RELEASE_BUFFERS);
    SSL **kept = calloc(count, sizeof *kept);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < count; i++) {
        SSL *s = SSL_new(server), *c = SSL_new(client);
        BIO *sr = BIO_new(BIO_s_mem()), *sw = BIO_new(BIO_s_mem()), *cr = BIO_new(BIO_s_mem()), *cw = BIO_new(BIO_s_mem());
        SSL_set_bio(s, sr, sw);
        SSL_set_bio(c, cr, cw);
        SSL_set_accept_state(s);
        SSL_set_connect_state(c);
        for (int k = 0; k < 6; k++) {
            SSL_do_handshake(c); pump(cw, sr);
            SSL_do_handshake(s); pump(sw, cr);
        }
        char got[64];
        SSL_write(c, "hello", 5); pump(cw, sr); SSL_read(s, got, sizeof got);
        SSL_write(s, "hello", 5); pump(sw, cr); SSL_read(c, got, sizeof got);
        if (!SSL_is_init_finished(s)) { fprintf(stderr, "handshake did not finish\n"); return 1; }
        SSL_free(c);
        kept[i] = s;
    }
    struct mallinfo2 after = mallinfo2();
    printf("%s: %d server sessions, %.0f bytes in use per session\n", OpenSSL_version(OPENSSL_VERSION), count,
           (double)(after.uordblks - before.uordblks) / count);
    return 0;
}
