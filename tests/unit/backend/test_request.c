#include "backend/request.h"

#include "http/parser.h"

#include <stdlib.h>
#include <string.h>

#include "../tap.h"

int main(void)
{
    struct sp_config config = {0};
    struct sp_route_config route = {0};
    struct sp_backend b = {.config = &config};
    struct sp_slice caps[SP_TMPL_MAX_CAPTURES];
    char err[128];
    char *url;

    config.backend.url = "http://127.0.0.1:3000/";
    config.backend.connect_timeout_ms = 1000;
    config.backend.timeout_ms = 2000;
    ok(sp_tmpl_compile("/orders/{id}/live", &route.tmpl, err, sizeof(err)) == 0, "template");
    ok(sp_tmpl_match(route.tmpl, "/orders/42/live", 15, caps), "match");

    url = sp_backend_url(&b, &route, "/api/orders/{id}", caps);
    is_str(url, "http://127.0.0.1:3000/api/orders/42", "backend URL: base (its '/' once) + path");
    free(url);
    url = sp_backend_url(&b, &route, "https://other.example/o/{id}?x=1", caps);
    is_str(url, "https://other.example/o/42?x=1", "an absolute template is used as it is");
    free(url);
    char huge[5000];
    memset(huge, 'p', sizeof(huge) - 1);
    huge[0] = '/';
    huge[sizeof(huge) - 1] = '\0';
    ok(sp_backend_url(&b, &route, huge, caps) == NULL, "too long: NULL");

    struct curl_slist *h = NULL;
    ok(sp_backend_add_header(&h, "Cookie", 4, "a=1; b=2") == 0 &&
           strcmp(h->data, "Cookie: a=1;") == 0,
       "a header with len bytes of its value");
    CURL *e = sp_backend_request(&b, "http://127.0.0.1:3000/a/../b", h);
    char *effective = NULL;
    ok(e != NULL && curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &effective) == CURLE_OK &&
           effective != NULL && strcmp(effective, "http://127.0.0.1:3000/a/../b") == 0,
       "the request's URL is the one given");
    curl_easy_cleanup(e);
    curl_slist_free_all(h);

    /* The client's header: every field of the name, joined. */
    static char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nX: y\r\ncookie: b=2\r\n"
                        "Authorization: Bearer t\r\n\r\n";
    struct sp_http_request req;
    struct sp_http_header fields[8];
    ok(sp_http_parse_request(raw, strlen(raw), &req, fields, 8) > 0, "a request");
    h = NULL;
    ok(sp_backend_copy_header(&h, &req, "Cookie") == 0 && h != NULL &&
           strcmp(h->data, "Cookie: a=1; b=2") == 0,
       "two Cookie fields are one cookie list");
    ok(sp_backend_copy_header(&h, &req, "Authorization") == 0 && h->next != NULL &&
           strcmp(h->next->data, "Authorization: Bearer t") == 0,
       "one field as it is");
    ok(sp_backend_copy_header(&h, &req, "X-Absent") == 0 && h->next->next == NULL,
       "an absent header adds nothing");
    curl_slist_free_all(h);
    sp_tmpl_free(route.tmpl);
    return tap_done();
}
