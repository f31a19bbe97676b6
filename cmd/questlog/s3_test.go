package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/lake/s3store/s3test"
)

// The whole path on an S3-compatible server that the test starts
// (moto_server, a separate process), reached through the AWS_*
// environment variables: up writes its lake to s3://bucket/lake, and
// query and the dashboard (while up runs), report and lake check read it
// there. query
// counts exactly the events the topic holds, nothing is written to the
// local lake folder, and the secret key is in no output.
func TestUpWithAnS3LakeOnMotoServer(t *testing.T) {
	srv := s3test.Start(t) // sets AWS_* for the processes the test starts
	loc := srv.NewBucket(t)
	dir := t.TempDir()
	cache := filepath.Join(t.TempDir(), "cache")
	p := start(t, "up", "--data-dir", dir, "--lake", loc, "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0",
		"--password-cost", "4", "--max-age", "300ms", "--refresh", "1s", "--cache-dir", cache)

	players := []player{
		{"ada", []string{"/buy_sword", "/buy?item=shield&quality=epic", "/join_guild?guild=knights"}},
		{"bob", []string{"/buy?item=potion&quantity=5", "/join_guild?guild=knights", "/leave_guild"}},
		{"cyd", []string{"/buy?item=ring&quality=rare", "/buy?item=spoon"}},
	}
	play(t, p.api, players)

	// What the topic holds, by type, as the lake must hold it.
	records := tailRecords(t, p.broker)
	perType := map[string]int{}
	typeOf := regexp.MustCompile(`"event_type":"([a-z_]+)"`)
	for _, r := range records {
		m := typeOf.FindSubmatch(r)
		if m == nil {
			t.Fatalf("a record without a type: %s", r)
		}
		perType[string(m[1])]++
	}
	if len(records) < 15 {
		t.Fatalf("%d records in the topic, want the players' 15 events at least", len(records))
	}
	var want []string
	for typ, n := range perType {
		want = append(want, fmt.Sprintf("%s,%d", typ, n))
	}
	slices.Sort(want)

	// query reads the bucket while up writes it, until the extract
	// brought in every event; then the counts by type are exact.
	queryArgs := []string{"query", "--lake", loc, "--cache-dir", cache, "--format", "csv"}
	count := fmt.Sprint(len(records))
	waitQuery(t, 90*time.Second, queryArgs, "SELECT count(*) FROM events", count)
	out := run(t, append(queryArgs, "SELECT event_type, count(*) FROM events GROUP BY ALL ORDER BY 1")...)
	got := strings.Split(strings.TrimSpace(out), "\n")[1:]
	if !slices.Equal(got, want) {
		t.Errorf("query counted by type\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The dashboard reads the bucket too (its copies in the same cache):
	// once rebuilt after the events arrived, its purchases chart has data.
	purchases := regexp.MustCompile(`data-chart="purchases" data-points="([1-9][0-9]*)"`)
	waitUntil(t, 60*time.Second, 500*time.Millisecond, "the dashboard to chart the purchases", func() (bool, string) {
		code, body := get(t, playerClient(), p.api+"/dashboard/report")
		return code == 200 && purchases.MatchString(body), fmt.Sprintf("%d\n%.2000s", code, body)
	})
	p.stop(syscall.SIGINT)

	// Nothing went to the local lake folder; the secret is in no output.
	if _, err := os.Stat(filepath.Join(dir, "lake")); !os.IsNotExist(err) {
		t.Errorf("up wrote a local lake folder with --lake %s: %v", loc, err)
	}
	if strings.Contains(p.out.String(), srv.SecretAccessKey) {
		t.Error("up printed the secret access key")
	}

	// lake check finds every offset once; report writes its charts.
	check := run(t, "lake", "check", "--lake", loc)
	if !strings.Contains(check, "ok: every offset") || !regexp.MustCompile(`(?m)^events\s+`+count+`$`).MatchString(check) {
		t.Errorf("lake check:\n%s", check)
	}
	html := filepath.Join(t.TempDir(), "report.html")
	out = run(t, "report", "--lake", loc, "--cache-dir", cache, "--out", html)
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if !strings.Contains(string(b), "<svg") {
		t.Errorf("the report of the S3 lake has no chart:\n%s", out)
	}
	for _, o := range []string{check, out, string(b)} {
		if strings.Contains(o, srv.SecretAccessKey) {
			t.Error("a command printed the secret access key")
		}
	}
}
