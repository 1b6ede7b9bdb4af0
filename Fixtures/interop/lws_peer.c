/*
 * A libwebsockets (Debian's libwebsockets-dev, 4.1) peer for Fixtures/interop/sockets.py, with
 * lws's own permessage-deflate:
 *
 *   lws_peer client HOST PORT [CA_FILE]   connects (TLS when CA_FILE is given), offers
 *                                         permessage-deflate and subprotocol "chat", sends the
 *                                         messages below one at a time, checks each echo byte for
 *                                         byte, closes with 1000; prints one line of key=value
 *                                         results. lws 4.1's client loops forever on an
 *                                         uncompressed message in a deflate session (its issue
 *                                         #2794), which RFC 7692 §6.1 allows, so the server must
 *                                         compress every message; and on a Pong (control frames
 *                                         are never compressed), so this client does not ping.
 *   lws_peer server PORT [CERT KEY]       an echo server (text as text, binary as binary).
 *
 * Build: cc -O2 -o lws_peer lws_peer.c -lwebsockets
 * Loopback only (the addresses come from the caller, which uses 127.0.0.1 and localhost).
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct lws_extension extensions[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate, "permessage-deflate; client_max_window_bits"},
    {NULL, NULL, NULL},
};

/* A message being assembled from receive callbacks, or queued for sending. */
struct message {
    unsigned char *bytes; /* LWS_PRE bytes of headroom, then the payload */
    size_t length, capacity;
    int binary;
};

static void append(struct message *m, const void *in, size_t len) {
    if (LWS_PRE + m->length + len > m->capacity) {
        m->capacity = 2 * (LWS_PRE + m->length + len);
        m->bytes = realloc(m->bytes, m->capacity);
        if (!m->bytes) abort();
    }
    memcpy(m->bytes + LWS_PRE + m->length, in, len);
    m->length += len;
}

static int interrupted;

/* ---- client ---------------------------------------------------------------------------- */

/* No empty message: lws 4.1's deflate asserts when it compresses one ("FAIL want to trim out
 * length 0"), its own sending bug. */
#define MESSAGES 4
static struct message sent[MESSAGES], received;
static int next_to_send, awaiting_echo, echoes_ok, closing, closed_ok; /* closed_ok: our Close went out and the connection ended after it */
static char extensions_header[256], protocol_header[64];

static void make_messages(void) {
    static const char greeting[] = "h\xc3\xa9llo w\xc3\xb6rld \xf0\x9f\x91\x8b";
    append(&sent[0], greeting, strlen(greeting));
    sent[1].binary = 1;
    append(&sent[1], "\x00\x01\x02\xff", 4);
    for (int i = 0; i < 25000; i++) append(&sent[2], "swift-ws ", 9);
    sent[3].binary = 1;
    unsigned x = 7;
    for (int i = 0; i < 65536; i++) {
        x = x * 1103515245u + 12345u;
        unsigned char b = (unsigned char)(x >> 24);
        append(&sent[3], &b, 1);
    }
}

static int client_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH: /* the response's headers are still there */
        lws_hdr_copy(wsi, extensions_header, sizeof extensions_header, WSI_TOKEN_EXTENSIONS);
        lws_hdr_copy(wsi, protocol_header, sizeof protocol_header, WSI_TOKEN_PROTOCOL);
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        /* lws also calls this when a large write has drained: send only after each echo. */
        if (awaiting_echo) break;
        if (next_to_send < MESSAGES) {
            awaiting_echo = 1;
            struct message *m = &sent[next_to_send++];
            if (lws_write(wsi, m->bytes + LWS_PRE, m->length, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)m->length)
                return -1;
        } else if (!closing) {
            closing = 1;
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
            return -1; /* lws sends the Close and waits for the peer's */
        }
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (lws_is_first_fragment(wsi)) {
            received.length = 0;
            received.binary = lws_frame_is_binary(wsi);
        }
        append(&received, in, len);
        if (lws_is_final_fragment(wsi)) {
            int i = next_to_send - 1;
            if (i >= 0 && received.length == sent[i].length && received.binary == sent[i].binary &&
                memcmp(received.bytes + LWS_PRE, sent[i].bytes + LWS_PRE, received.length) == 0)
                echoes_ok++;
            awaiting_echo = 0;
            lws_callback_on_writable(wsi);
        }
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        printf("error=%s\n", in ? (const char *)in : "connection error");
        interrupted = 1;
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        closed_ok = closing;
        interrupted = 1;
        break;
    default:
        break;
    }
    return 0;
}

/* ---- server ---------------------------------------------------------------------------- */

/* Echoes wait in a queue: a client may send its next message before the last echo is out. */
struct queued {
    struct message m;
    struct queued *next;
};

struct session {
    struct message in;
    struct queued *head, *tail;
};

static int server_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    struct session *s = user;
    switch (reason) {
    case LWS_CALLBACK_RECEIVE:
        if (lws_is_first_fragment(wsi)) {
            s->in.length = 0;
            s->in.binary = lws_frame_is_binary(wsi);
        }
        append(&s->in, in, len);
        if (lws_is_final_fragment(wsi)) {
            struct queued *q = calloc(1, sizeof *q);
            if (!q) abort();
            q->m = s->in;
            memset(&s->in, 0, sizeof s->in);
            if (s->tail) s->tail->next = q; else s->head = q;
            s->tail = q;
            lws_callback_on_writable(wsi);
        }
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (s->head) {
            struct queued *q = s->head;
            s->head = q->next;
            if (!s->head) s->tail = NULL;
            int n = lws_write(wsi, q->m.bytes + LWS_PRE, q->m.length, q->m.binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
            int short_write = n < (int)q->m.length;
            free(q->m.bytes);
            free(q);
            if (short_write) return -1;
            if (s->head) lws_callback_on_writable(wsi);
        }
        break;
    case LWS_CALLBACK_CLOSED:
        free(s->in.bytes);
        while (s->head) {
            struct queued *q = s->head;
            s->head = q->next;
            free(q->m.bytes);
            free(q);
        }
        break;
    default:
        break;
    }
    return 0;
}

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "client") && strcmp(argv[1], "server"))) {
        fprintf(stderr, "usage: lws_peer client HOST PORT [CA_FILE] | lws_peer server PORT [CERT KEY]\n");
        return 2;
    }
    int client = strcmp(argv[1], "client") == 0;
    lws_set_log_level(getenv("LWS_PEER_DEBUG") ? LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO | LLL_CLIENT : LLL_ERR, NULL);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct lws_protocols protocols[] = {
        client ? (struct lws_protocols){"chat", client_callback, 0, 65536, 0, NULL, 0}
               : (struct lws_protocols){"chat", server_callback, sizeof(struct session), 65536, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.protocols = protocols;
    info.extensions = extensions;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.gid = -1;
    info.uid = -1;
    if (client) {
        info.port = CONTEXT_PORT_NO_LISTEN;
        if (argc > 4) info.client_ssl_ca_filepath = argv[4];
    } else {
        info.port = atoi(argv[2]);
        info.iface = "127.0.0.1";
        if (argc > 4) {
            info.ssl_cert_filepath = argv[3];
            info.ssl_private_key_filepath = argv[4];
        }
    }
    struct lws_context *context = lws_create_context(&info);
    if (!context) {
        fprintf(stderr, "lws_create_context failed\n");
        return 1;
    }
    if (client) {
        make_messages();
        struct lws_client_connect_info c;
        memset(&c, 0, sizeof c);
        c.context = context;
        c.address = argv[2];
        c.port = atoi(argv[3]);
        c.path = "/";
        c.host = argv[2];
        c.origin = argv[2];
        c.protocol = "chat";
        c.ssl_connection = argc > 4 ? LCCSCF_USE_SSL : 0;
        if (!lws_client_connect_via_info(&c)) {
            printf("error=connect\n");
            lws_context_destroy(context);
            return 1;
        }
        alarm(30);
    }
    while (!interrupted && lws_service(context, 0) >= 0) {
    }
    lws_context_destroy(context);
    if (client)
        printf("ext=%s protocol=%s echoes=%d close=%s\n", extensions_header, protocol_header, echoes_ok,
               closed_ok ? "sent" : "none");
    return 0;
}
