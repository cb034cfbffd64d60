package main

import (
	"context"
	"flag"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "save the browser test's screenshot as docs/dashboard-rollback.png")

// tag is one start tag of a page as chromium serialised it.
type tag struct {
	name  string
	attrs map[string]string
}

var (
	tagRE  = regexp.MustCompile(`<([a-zA-Z][\w-]*)((?:\s+[\w:-]+(?:="[^"]*")?)*)\s*/?>`)
	attrRE = regexp.MustCompile(`([\w:-]+)(?:="([^"]*)")?`)
)

func tags(dom string) []tag {
	var out []tag
	for _, m := range tagRE.FindAllStringSubmatch(dom, -1) {
		t := tag{name: strings.ToLower(m[1]), attrs: map[string]string{}}
		for _, a := range attrRE.FindAllStringSubmatch(m[2], -1) {
			t.attrs[a[1]] = a[2]
		}
		out = append(out, t)
	}
	return out
}

func withClass(ts []tag, class string) []tag {
	var out []tag
	for _, t := range ts {
		if t.attrs["class"] == class {
			out = append(out, t)
		}
	}
	return out
}

// TestDashboardInBrowser plays a bad backport in the demo sandbox until the
// canaries catch it and it is rolled back, then loads its page in headless
// chromium and checks the canary chart the browser ends up with: one
// series per canary, drawn above the threshold line, the baseline, and the
// rollback marker. It also loads the front page and checks that its live
// updates (server-sent events) reach the browser.
func TestDashboardInBrowser(t *testing.T) {
	chromium := testparts.NeedChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	timings := demoTimings{VerifyTimeout: 2 * time.Minute, PromoteTimeout: 2 * time.Minute,
		BaselineMin: time.Second, Window: 4 * time.Second, Interval: 500 * time.Millisecond, MinRequests: 40}
	sb, err := startSandbox(ctx, t.TempDir(), timings, "info", strings.NewReader(""), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if sb.Main.Web == nil {
		t.Fatal("the demo opened no dashboard")
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- sb.Main.Run(runCtx) }()
	defer func() {
		stop()
		<-ran
	}()

	sb.say("alice", "!backport bad-change --include-unexpected")
	if _, err := sb.Tap.Wait(ctx, 1, time.Minute, deployer.NoticeVerify); err != nil {
		t.Fatal(err)
	}
	// While it waits for bob, the front page follows it live: its script
	// replaces the live part with each server-sent event and counts them.
	live, err := chromium.Eval(ctx, sb.Main.dashboardURL(), `new Promise(done => {
		const page = () => document.documentElement.outerHTML;
		const poll = setInterval(() => {
			if (document.getElementById("live").dataset.updates) {
				clearInterval(poll);
				done(page());
			}
		}, 50);
		setTimeout(() => done(page()), 10000);
	})`)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`<div id="live" data-updates="\d+">`).MatchString(live) {
		t.Error("the front page received no live update in the browser")
	}
	for _, want := range []string{`id="active" data-id="1" data-state="awaiting-verification"`, `id="seconds-left"`, "test it on the testservers"} {
		if !strings.Contains(live, want) {
			t.Errorf("the live front page lacks %q", want)
		}
	}
	sb.say("bob", "verified")
	n, err := sb.Tap.Wait(ctx, 1, time.Minute, deployer.NoticeRolledBack, deployer.NoticeDone, deployer.NoticeFailed)
	if err != nil {
		t.Fatal(err)
	}
	if n.Kind != deployer.NoticeRolledBack {
		t.Fatalf("the bad change ended with %s: %s", n.Kind, n.Text)
	}
	page := sb.Main.Web.Link(1)
	if !strings.Contains(n.Text, page) {
		t.Errorf("the rollback notice does not link to the deployment's page %s: %s", page, n.Text)
	}

	start := time.Now()
	dom, err := chromium.DumpDOM(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chromium --dump-dom %s: %d bytes in %s", page, len(dom), time.Since(start).Round(time.Millisecond))
	ts := tags(dom)
	if charts := withClass(ts, "canary-chart"); len(charts) != 1 || charts[0].name != "svg" || charts[0].attrs["data-outcome"] != "fail" {
		t.Fatalf("want one failed canary chart in the DOM, got %+v", charts)
	}
	var canaries []string
	for _, h := range sb.Main.Fleet[deployer.Canaries] {
		canaries = append(canaries, h.Name())
	}
	series := withClass(ts, "series")
	var drawn []string
	for _, s := range series {
		drawn = append(drawn, s.attrs["data-host"])
	}
	slices.Sort(drawn)
	if !slices.Equal(drawn, canaries) {
		t.Errorf("chart series for %v, want one per canary %v", drawn, canaries)
	}
	thr := withClass(ts, "threshold")
	if len(thr) != 1 || len(withClass(ts, "baseline")) != 1 {
		t.Fatalf("threshold lines %d, baseline lines %d, want 1 each", len(thr), len(withClass(ts, "baseline")))
	}
	if rb := withClass(ts, "marker verdict rollback"); len(rb) != 1 {
		t.Errorf("rollback markers: %d, want 1", len(rb))
	}
	if len(withClass(ts, "marker sync")) != 1 {
		t.Error("the canaries' sync is not marked")
	}
	// Why it was rolled back, at a glance: a canary drawn above the
	// threshold (SVG y grows downwards).
	yThr, _ := strconv.ParseFloat(thr[0].attrs["y1"], 64)
	above := false
	for _, s := range series {
		for _, p := range strings.Fields(s.attrs["points"]) {
			_, ys, _ := strings.Cut(p, ",")
			if y, err := strconv.ParseFloat(ys, 64); err == nil && y < yThr {
				above = true
			}
		}
	}
	if !above {
		t.Error("no canary is drawn above the threshold, yet the check failed")
	}
	for _, want := range []string{`<span class="badge rolled-back" id="state">rolled-back</span>`, "canary check failed:"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}

	front, err := chromium.DumpDOM(ctx, sb.Main.dashboardURL())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(front, "Nothing is deploying") || !strings.Contains(front, `<tr data-id="1">`) {
		t.Errorf("the front page does not show the idle pipeline and #1")
	}

	shot := filepath.Join(t.TempDir(), "dashboard-rollback.png")
	if err := chromium.Screenshot(ctx, page, shot, 1280, 1000); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 1000 {
		t.Errorf("screenshot is %dx%d, want 1280x1000", b.Dx(), b.Dy())
	}
	if *updateScreenshot {
		if err := savePalettedPNG(img, filepath.Join("..", "..", "docs", "dashboard-rollback.png")); err != nil {
			t.Fatal(err)
		}
	}
}

// savePalettedPNG writes img with its 256 most frequent colours, each pixel
// mapped to the nearest: a flat page looks the same and the file stays
// small enough to keep in the repository.
func savePalettedPNG(img image.Image, path string) error {
	b := img.Bounds()
	freq := map[color.RGBA]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			// Count colours at 5 bits a channel, so anti-aliasing shades
			// pool instead of crowding out the page's real colours.
			freq[color.RGBA{uint8(r>>8) &^ 7, uint8(g>>8) &^ 7, uint8(bl>>8) &^ 7, 255}]++
		}
	}
	cs := make([]color.RGBA, 0, len(freq))
	for c := range freq {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return freq[cs[i]] > freq[cs[j]] })
	pal := color.Palette{}
	for _, c := range cs[:min(256, len(cs))] {
		pal = append(pal, c)
	}
	out := image.NewPaletted(b, pal)
	cache := map[color.RGBA]uint8{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			c := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}
			i, ok := cache[c]
			if !ok {
				i = uint8(pal.Index(c))
				cache[c] = i
			}
			out.SetColorIndex(x, y, i)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(f, out); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
