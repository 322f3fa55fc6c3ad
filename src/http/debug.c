/* /debug/np/: the runtime seen live over HTTP (Go's net/http/pprof and expvar for np). */
#include "http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *const reasons[NP_WAIT_NREASONS] = {
    [NP_WAIT_SLEEP] = "sleep",         [NP_WAIT_CHAN_SEND] = "chan_send",
    [NP_WAIT_CHAN_RECV] = "chan_recv", [NP_WAIT_SELECT] = "select",
    [NP_WAIT_MUTEX] = "mutex",         [NP_WAIT_WAITGROUP] = "waitgroup",
    [NP_WAIT_IO] = "io",               [NP_WAIT_BLOCKING] = "blocking",
    [NP_WAIT_OTHER] = "other",         [NP_WAIT_COND] = "cond",
    [NP_WAIT_RWMUTEX] = "rwmutex",     [NP_WAIT_ONCE] = "once",
};

static void vars(np_http_rw *w)
{
    np_stats s;
    if (np_stats_get(&s) < 0) {
        np_http_error(w, 500);
        return;
    }
    np_http_set_header(w, "Content-Type", "application/json");
    np_http_set_header(w, "Cache-Control", "no-store");
    np_http_printf(w,
                   "{\"version\":\"%s\",\"time_ns\":%" PRId64 ",\"poller\":\"%s\","
                   "\"coroutines\":%" PRId64 ",\"running\":%" PRId64 ",\"runnable\":%" PRId64
                   ",\"waiting\":%" PRId64 ",\"waiting_by\":{",
                   np_version(), np_now(), np_poller_name(), s.coroutines, s.running, s.runnable,
                   s.waiting);
    for (int i = 0; i < NP_WAIT_NREASONS; i++)
        np_http_printf(w, "%s\"%s\":%" PRId64, i ? "," : "", reasons[i], s.waiting_by[i]);
    np_http_printf(w,
                   "},\"procs\":%" PRId64 ",\"threads\":%" PRId64 ",\"polls\":%" PRId64
                   ",\"events\":%" PRId64 ",\"steals\":%" PRId64 ",\"switches\":%" PRId64
                   ",\"timers\":%" PRId64 ",\"fds\":%" PRId64 ",\"stack_trims\":%" PRId64 ",",
                   s.procs, s.threads, s.polls, s.events, s.steals, s.switches, s.timers, s.fds,
                   s.stack_trims);
    np_tls_stats t;
    np_tls_stats_get(&t);
    np_http_printf(w,
                   "\"tls\":{\"open\":%" PRId64 ",\"handshakes\":%" PRId64 ",\"resumed\":%" PRId64
                   ",\"failed\":%" PRId64 ",\"ktls_tx\":%" PRId64 ",\"ktls_rx\":%" PRId64
                   ",\"ktls_available\":%s}}\n",
                   t.open, t.handshakes, t.resumed, t.failed, t.ktls_tx, t.ktls_rx,
                   t.ktls_available ? "true" : "false");
}

/* The dump goes to a memory file (np_dump writes to a descriptor), then to the body. */
static void goroutines(np_http_rw *w)
{
    int fd = memfd_create("np-dump", MFD_CLOEXEC);
    if (fd < 0 || np_dump(fd) < 0) {
        if (fd >= 0)
            close(fd);
        np_http_error(w, 500);
        return;
    }
    np_http_set_header(w, "Content-Type", "text/plain; charset=utf-8");
    np_http_set_header(w, "Cache-Control", "no-store");
    char buf[8192];
    ssize_t n;
    off_t at = 0;
    while ((n = pread(fd, buf, sizeof buf, at)) > 0) {
        at += n;
        if (np_http_write(w, buf, (size_t)n) < 0)
            break;
    }
    close(fd);
}

static const char page[] =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>np runtime</title>\n"
    "<style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin-right:2em}td,th{padding:2px 10px;text-align:right}"
    "th{text-align:left;font-weight:normal;color:#555}.box{display:flex;flex-wrap:wrap;gap:1em}"
    "h1{font-size:18px}#state{color:#777}canvas{border:1px solid #ddd}</style></head><body>\n"
    "<h1>np runtime <span id=\"version\"></span></h1>\n"
    "<p id=\"state\">refreshes: <span id=\"refreshes\">0</span> &middot; "
    "<a href=\"goroutines\">coroutine dump</a> &middot; <a href=\"vars\">vars (JSON)</a></p>\n"
    "<div class=\"box\"><table id=\"counts\"><tr><th>coroutines</th><td id=\"v-coroutines\"></td></tr>"
    "<tr><th>running</th><td id=\"v-running\"></td></tr>"
    "<tr><th>runnable</th><td id=\"v-runnable\"></td></tr>"
    "<tr><th>waiting</th><td id=\"v-waiting\"></td></tr>"
    "<tr><th>Ps</th><td id=\"v-procs\"></td></tr>"
    "<tr><th>threads</th><td id=\"v-threads\"></td></tr>"
    "<tr><th>timers</th><td id=\"v-timers\"></td></tr>"
    "<tr><th>fds</th><td id=\"v-fds\"></td></tr></table>\n"
    "<table id=\"rates\"><tr><th></th><th>total</th><th>per s</th></tr>"
    "<tr><th>switches</th><td id=\"v-switches\"></td><td id=\"r-switches\"></td></tr>"
    "<tr><th>polls</th><td id=\"v-polls\"></td><td id=\"r-polls\"></td></tr>"
    "<tr><th>events</th><td id=\"v-events\"></td><td id=\"r-events\"></td></tr>"
    "<tr><th>steals</th><td id=\"v-steals\"></td><td id=\"r-steals\"></td></tr></table>\n"
    "<table id=\"waits\"><tr><th>waiting in</th><th></th></tr></table></div>\n"
    "<p>coroutines (blue), runnable (orange), switches/s (green, own scale), last 2 minutes</p>"
    "<canvas id=\"chart\" width=\"600\" height=\"160\"></canvas>\n"
    "<script>\n"
    "const hist=[];let last=null,n=0;\n"
    "function put(id,v){const e=document.getElementById(id);if(e)e.textContent=v;}\n"
    "function draw(){const c=document.getElementById('chart'),g=c.getContext('2d');"
    "g.clearRect(0,0,c.width,c.height);const keys=[['coroutines','#1f77b4',0],"
    "['runnable','#ff7f0e',0],['swps','#2ca02c',1]];"
    "const m=[1,1];for(const h of hist){m[0]=Math.max(m[0],h.coroutines,h.runnable);"
    "m[1]=Math.max(m[1],h.swps);}for(const[k,col,s]of keys){g.strokeStyle=col;g.beginPath();"
    "hist.forEach((h,i)=>{const x=i*c.width/119,y=c.height-2-(c.height-4)*h[k]/m[s];"
    "i?g.lineTo(x,y):g.moveTo(x,y);});g.stroke();}}\n"
    "async function tick(){try{const r=await fetch('vars',{cache:'no-store'});"
    "const v=await r.json();put('version',v.version+' ('+v.poller+')');"
    "for(const k of['coroutines','running','runnable','waiting','procs','threads','timers',"
    "'fds','switches','polls','events','steals'])put('v-'+k,v[k]);"
    "const dt=last?(v.time_ns-last.time_ns)/1e9:0;let swps=0;"
    "for(const k of['switches','polls','events','steals']){const r=dt>0?"
    "Math.round((v[k]-last[k])/dt):'';put('r-'+k,r);if(k==='switches')swps=r||0;}"
    "const t=document.getElementById('waits');while(t.rows.length>1)t.deleteRow(1);"
    "for(const[k,c]of Object.entries(v.waiting_by)){const row=t.insertRow();"
    "row.insertCell().textContent=k;const d=row.insertCell();d.id='w-'+k;d.textContent=c;}"
    "hist.push({coroutines:v.coroutines,runnable:v.runnable,swps:swps});"
    "if(hist.length>120)hist.shift();draw();last=v;window.npLast=v;"
    "put('refreshes',++n);}catch(e){put('state','error: '+e);}}\n"
    "tick();setInterval(tick,1000);\n</script></body></html>\n";

void np_http_debug(np_http_req *req, np_http_rw *w, void *arg)
{
    (void)arg;
    const char *p = np_http_req_path(req);
    const char *leaf = strrchr(p, '/');
    leaf = leaf ? leaf + 1 : p;
    if (strcmp(leaf, "vars") == 0) {
        vars(w);
    } else if (strcmp(leaf, "goroutines") == 0) {
        goroutines(w);
    } else if (*leaf == 0) {
        np_http_set_header(w, "Cache-Control", "no-store");
        np_http_reply(w, 200, "text/html; charset=utf-8", page, sizeof page - 1);
    } else {
        np_http_error(w, 404);
    }
}
