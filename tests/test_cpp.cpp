// np from C++: np.h compiles as C++11 (-Wall -Wextra -Werror -pedantic) and a C++ program
// runs coroutines, channels, select, a mutex, a wait group, a cond, a reader/writer
// mutex, a once, np_after, a ticker and sockets. Built in every variant with the
// variant's C++ compiler; prints the harness's summary line itself (tests/t.h is C).
// The install test builds it again against an installed tree.
#include <np.h>
#include <np_http.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <unistd.h>

namespace {

int failures = 0;

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            std::fprintf(stderr, "%s:%d: EXPECT failed: %s (errno %d)\n", __FILE__,    \
                         __LINE__, #cond, errno);                                      \
            failures++;                                                                \
        }                                                                              \
    } while (0)

// A scoped lock over np_mutex, the way C++ code would wrap it.
class Lock {
  public:
    explicit Lock(np_mutex &mu) : mu_(mu) { EXPECT(np_mutex_lock(&mu_) == 0); }
    ~Lock() { EXPECT(np_mutex_unlock(&mu_) == 0); }
    Lock(const Lock &) = delete;
    Lock &operator=(const Lock &) = delete;

  private:
    np_mutex &mu_;
};

// ---- coroutines, channels, select, mutex, wait group ------------------------------
struct Work {
    np_chan *jobs;
    np_chan *results;
    np_mutex mu;
    np_wg wg;
    std::vector<int> seen; // under mu
};

void worker(void *arg)
{
    Work *w = static_cast<Work *>(arg);
    int v;
    while (np_chan_recv(w->jobs, &v) == 1) {
        {
            Lock l(w->mu);
            w->seen.push_back(v);
        }
        int sq = v * v;
        EXPECT(np_chan_send(w->results, &sq) == 0);
    }
    np_wg_done(&w->wg);
}

void chan_main(void *)
{
    Work w;
    w.jobs = np_chan_new(sizeof(int), 0);
    w.results = np_chan_new(sizeof(int), 16);
    w.mu = np_mutex{};
    w.wg = np_wg{};
    const int nworkers = 8, njobs = 1000;
    np_wg_add(&w.wg, nworkers);
    for (int i = 0; i < nworkers; i++)
        EXPECT(np_go(worker, &w) > 0);
    long long sum = 0;
    int sent = 0, got = 0;
    while (got < njobs) {
        int out = sent, in = 0;
        np_case cs[2] = {};
        cs[0].chan = sent < njobs ? w.jobs : nullptr; // a null channel never fires
        cs[0].op = NP_SEND;
        cs[0].elem = &out;
        cs[1].chan = w.results;
        cs[1].op = NP_RECV;
        cs[1].elem = &in;
        int k = np_select(cs, 2, -1);
        if (k == 0)
            sent++;
        else if (k == 1) {
            sum += in;
            got++;
        } else
            EXPECT(k >= 0);
    }
    EXPECT(np_chan_close(w.jobs) == 0);
    EXPECT(np_wg_wait(&w.wg) == 0);
    long long want = 0;
    for (int i = 0; i < njobs; i++)
        want += (long long)i * i;
    EXPECT(sum == want);
    EXPECT((int)w.seen.size() == njobs);
    EXPECT(np_chan_free(w.jobs) == 0);
    EXPECT(np_chan_free(w.results) == 0);
}

// ---- sockets: an echo server and clients over loopback TCP ---------------------------
struct Echo {
    int lfd;
    np_wg done;
};

void echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[512];
    ssize_t n;
    while ((n = np_read(fd, buf, sizeof buf)) > 0)
        if (np_write(fd, buf, (size_t)n) != n)
            break;
    np_close(fd);
}

void echo_server(void *arg)
{
    Echo *e = static_cast<Echo *>(arg);
    for (;;) {
        int c = np_accept(e->lfd, nullptr, nullptr);
        if (c < 0)
            break; // the listener was closed
        np_go(echo_conn, (void *)(intptr_t)c);
    }
}

struct Client {
    std::string addr;
    int id;
    np_wg *done;
};

void echo_client(void *arg)
{
    Client *c = static_cast<Client *>(arg);
    int fd = np_dial("tcp", c->addr.c_str(), 5000000000LL);
    EXPECT(fd >= 0);
    if (fd >= 0) {
        for (int i = 0; i < 20; i++) {
            std::string msg = "client " + std::to_string(c->id) + " line " + std::to_string(i);
            EXPECT(np_write(fd, msg.data(), msg.size()) == (ssize_t)msg.size());
            std::string back;
            char buf[128];
            while (back.size() < msg.size()) {
                ssize_t n = np_read(fd, buf, sizeof buf);
                EXPECT(n > 0);
                if (n <= 0)
                    break;
                back.append(buf, (size_t)n);
            }
            EXPECT(back == msg);
        }
        np_close(fd);
    }
    np_wg_done(c->done);
}

void net_main(void *)
{
    Echo e;
    e.lfd = np_listen("tcp", "127.0.0.1:0");
    EXPECT(e.lfd >= 0);
    if (e.lfd < 0)
        return;
    sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    EXPECT(getsockname(e.lfd, reinterpret_cast<sockaddr *>(&ss), &sl) == 0);
    char port[16];
    std::snprintf(port, sizeof port, "%u",
                  (unsigned)ntohs(reinterpret_cast<sockaddr_in *>(&ss)->sin_port));
    np_go(echo_server, &e);
    np_wg done = NP_WG_INIT;
    std::vector<Client> clients(50);
    np_wg_add(&done, (int64_t)clients.size());
    for (size_t i = 0; i < clients.size(); i++) {
        clients[i] = Client{std::string("127.0.0.1:") + port, (int)i, &done};
        np_go(echo_client, &clients[i]);
    }
    EXPECT(np_wg_wait(&done) == 0);
    np_close(e.lfd);
}

// ---- cond, rwmutex, once: a config loaded once, read under a read lock, a queue ----
struct Shared {
    np_once once = NP_ONCE_INIT;
    np_rwmutex rw = NP_RWMUTEX_INIT;
    np_mutex mu = NP_MUTEX_INIT;
    np_cond cv = NP_COND_INIT;
    np_wg wg = NP_WG_INIT;
    int loads = 0;
    std::string config;  // set once, then read under rw
    std::vector<int> q;  // under mu
    int taken = 0;       // under mu
};

void load_config(void *arg)
{
    Shared *s = static_cast<Shared *>(arg);
    s->loads++;
    np_yield();
    s->config = "loaded";
}

void sync_worker(void *arg)
{
    Shared *s = static_cast<Shared *>(arg);
    EXPECT(np_once_do(&s->once, load_config, s) == 0);
    EXPECT(np_rwmutex_rlock(&s->rw) == 0);
    EXPECT(s->config == "loaded");
    EXPECT(np_rwmutex_runlock(&s->rw) == 0);
    Lock l(s->mu);
    while (s->q.empty())
        EXPECT(np_cond_wait(&s->cv, &s->mu) == 0);
    s->q.pop_back();
    s->taken++;
    np_wg_done(&s->wg);
}

void sync_main(void *)
{
    Shared s;
    const int n = 10;
    np_wg_add(&s.wg, n);
    for (int i = 0; i < n; i++)
        EXPECT(np_go(sync_worker, &s) > 0);
    for (int i = 0; i < n; i++) {
        EXPECT(np_rwmutex_lock(&s.rw) == 0);
        EXPECT(np_rwmutex_unlock(&s.rw) == 0);
        Lock l(s.mu);
        s.q.push_back(i);
        EXPECT(np_cond_signal(&s.cv) == 0);
    }
    EXPECT(np_wg_wait(&s.wg) == 0);
    EXPECT(s.loads == 1);
    EXPECT(s.taken == n);
}

// ---- time: a ticker and an after in one select ----------------------------------------
void time_main(void *)
{
    const int64_t ms = 1000000;
    int64_t t0 = np_now(), v = 0; // before np_after: its deadline is counted from the call
    np_ticker *tk = np_ticker_new(2 * ms);
    np_chan *after = np_after(30 * ms);
    EXPECT(tk != nullptr && after != nullptr);
    if (!tk || !after)
        return;
    int ticks = 0;
    for (;;) {
        np_case cs[2] = {};
        cs[0].chan = np_ticker_chan(tk);
        cs[0].op = NP_RECV;
        cs[0].elem = &v;
        cs[1].chan = after;
        cs[1].op = NP_RECV;
        cs[1].elem = &v;
        int k = np_select(cs, 2, 5000 * ms);
        EXPECT(k == 0 || k == 1);
        if (k != 0)
            break;
        ticks++;
    }
    EXPECT(v >= t0 + 30 * ms); // the after's value ended it
    if (ticks == 0) { // both were ready at the first select (a thread held off 30 ms)
        np_case ct[1] = {};
        ct[0].chan = np_ticker_chan(tk);
        ct[0].op = NP_RECV;
        ct[0].elem = &v;
        ticks = np_select(ct, 1, 5000 * ms) == 0;
    }
    EXPECT(ticks > 0);
    EXPECT(np_ticker_stop(tk) == 0);
    EXPECT(np_ticker_free(tk) == 0);
    EXPECT(np_chan_free(after) == 0);
}

// ---- HTTP: a server with a handler, the client against it --------------------------
struct Http {
    np_http_server *srv;
    int ln;
    np_wg done;
};

void http_hello(np_http_req *req, np_http_rw *w, void *)
{
    std::string body = std::string("hi ") + np_http_req_query(req);
    EXPECT(np_http_reply(w, 200, "text/plain", body.data(), body.size()) == 0);
}

void http_serve(void *arg)
{
    Http *h = static_cast<Http *>(arg);
    EXPECT(np_http_serve(h->srv, h->ln) == 0);
    np_wg_done(&h->done);
}

void http_main(void *)
{
    Http h;
    h.done = np_wg{};
    h.srv = np_http_server_new(nullptr);
    EXPECT(np_http_handle(h.srv, "/hi", http_hello, nullptr) == 0);
    h.ln = np_listen("tcp", "127.0.0.1:0");
    EXPECT(h.ln >= 0);
    sockaddr_in sa{};
    socklen_t sl = sizeof sa;
    EXPECT(getsockname(h.ln, reinterpret_cast<sockaddr *>(&sa), &sl) == 0);
    np_wg_add(&h.done, 1);
    np_go(http_serve, &h);
    np_http_client *c = np_http_client_new(nullptr);
    std::string url = "http://127.0.0.1:" + std::to_string(ntohs(sa.sin_port)) + "/hi?there";
    np_http_resp *r = np_http_get(c, url.c_str());
    EXPECT(r != nullptr);
    if (r) {
        char buf[64] = {};
        EXPECT(np_http_resp_status(r) == 200);
        EXPECT(np_http_resp_read(r, buf, sizeof buf - 1) == 8);
        EXPECT(std::strcmp(buf, "hi there") == 0);
        np_http_resp_close(r);
    }
    np_http_client_free(c);
    EXPECT(np_http_shutdown(h.srv, np_now() + 5000000000LL) == 0);
    EXPECT(np_wg_wait(&h.done) == 0);
    np_http_server_free(h.srv);
}

void version_main(void *) { EXPECT(std::strcmp(np_version(), NP_VERSION_STRING) == 0); }

struct Case {
    const char *name;
    void (*fn)(void *);
};

} // namespace

int main()
{
    static const Case cases[] = {
        {"t_cpp_chan_select_mutex_wg", chan_main},
        {"t_cpp_tcp_echo", net_main},
        {"t_cpp_cond_rwmutex_once", sync_main},
        {"t_cpp_after_ticker", time_main},
        {"t_cpp_version", version_main},
        {"t_cpp_http", http_main},
    };
    int passed = 0, failed = 0;
    for (const Case &c : cases) {
        int before = failures;
        int rc = np_run(c.fn, nullptr);
        if (rc != 0 || failures != before) {
            std::printf("FAIL test_cpp:%s\n", c.name);
            failed++;
        } else {
            std::printf("ok   test_cpp:%s\n", c.name);
            passed++;
        }
    }
    std::printf("%d passed, %d failed, 0 skipped\n", passed, failed);
    return failed != 0;
}
