package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
)

// playWindow is the scenario's backport window. Before the evening window
// opens, three people put five changes on its list (across the root, core
// and extension Foo); the window opens and the bot pings them; alice
// deploys the list as one batch; the canaries fail it, and the bisection
// finds Bob's sidebar change, which is rolled back and blocked while the
// four others ship. The bot's clock is moved to the window instead of
// waiting for it. Every host's tree is checked after each bisection round
// and at the end.
func playWindow(ctx context.Context, sb *sandbox, out io.Writer) error {
	const patience = 3 * time.Minute
	win := sb.Windows.Evening
	fmt.Fprintln(out, "\n--- 4. the evening backport window. Before it opens, three people put their changes on its list: Erin a")
	fmt.Fprintln(out, "    new page and a core change, Bob a sidebar cache (it fails a quarter of requests under traffic), Dana")
	fmt.Fprintln(out, "    Spanish messages and an extension change. The window opens, the bot pings them, and alice deploys")
	fmt.Fprintln(out, "    the list as one batch; the canaries fail it and the bot bisects it to find the guilty change.")
	coreC, extC, err := sb.Env.MergeWindowChanges()
	if err != nil {
		return err
	}
	refs := map[string]string{}
	for _, b := range []string{demo.WindowPrivacy, demo.WindowSidebar, demo.WindowSpanish} {
		if refs[b], err = sb.Env.Commit(b); err != nil {
			return err
		}
	}
	privacy, sidebar, spanish := refs[demo.WindowPrivacy], refs[demo.WindowSidebar], refs[demo.WindowSpanish]
	fmt.Fprintf(out, "    (merged %.10s in core's %s and %.10s in Foo's, with core's pointer moved to it; the bot's clock\n", coreC, demo.ReleaseBranch, extC)
	fmt.Fprintln(out, "    moves to ten minutes before the evening window)")
	sb.Clock.Set(win.Add(-10 * time.Minute))
	sb.say("alice", "!backport "+spanish[:10])
	sb.say("erin", "!add "+privacy[:10])
	sb.say("erin", "!add "+demo.ReleaseDir+":"+coreC[:10])
	sb.say("bob", "!add "+sidebar[:10])
	sb.say("dana", "!add "+spanish[:10])
	sb.say("dana", "!add "+demo.ReleaseDir+"/"+demo.ExtensionPath+":"+extC[:10])
	sb.say("alice", "!window")
	v, err := sb.Main.Runner.WindowStatus()
	if err != nil {
		return err
	}
	if v.Open || len(v.Items) != 5 {
		return fmt.Errorf("the evening window's list holds %d changes (open: %v), want 5 before it opens", len(v.Items), v.Open)
	}

	fmt.Fprintln(out, "    (the bot's clock moves on to the window's start)")
	from := len(sb.Tap.Notices())
	sb.Clock.Set(win.Add(time.Second))
	opening, _, err := sb.Tap.WaitFor(ctx, from, time.Minute, func(n deployer.Notice) bool { return n.Kind == deployer.NoticeWindow })
	if err != nil {
		return fmt.Errorf("the evening window's opening was not announced: %w", err)
	}
	for _, who := range []string{"Bob Submitter", "Dana Developer", "Erin Editor"} {
		if !contains(opening.Mention, who) {
			return fmt.Errorf("the window's opening did not ping %s (it pinged %v)", who, opening.Mention)
		}
	}

	from = len(sb.Tap.Notices())
	sb.say("alice", "!window go")
	const id = 4
	finished := []deployer.NoticeKind{deployer.NoticeDone, deployer.NoticeRolledBack, deployer.NoticeFailed, deployer.NoticeCancelled}
	if _, err := sb.Tap.Wait(ctx, id, patience, append(finished, deployer.NoticeVerify)...); err != nil {
		return err
	}
	fmt.Fprintln(out, "    (Erin, Bob and Dana each test their own changes on the testserver and reply)")
	for _, who := range []string{"erin", "bob", "dana"} {
		sb.say(who, "verified")
	}

	// Each round: every host serves exactly its commit's tree, the
	// testservers the whole batch, production still the base.
	var batch *deployer.Deployment
	rounds := 0
	for {
		n, next, err := sb.Tap.WaitFor(ctx, from, patience, func(n deployer.Notice) bool {
			return n.Deployment == id && (n.Kind == deployer.NoticeVerdict || containsKind(finished, n.Kind))
		})
		if err != nil {
			return fmt.Errorf("batch #%d: %w", id, err)
		}
		from = next
		if containsKind(finished, n.Kind) {
			break
		}
		if batch == nil {
			if batch, err = sb.Main.Store.Get(id); err != nil {
				return err
			}
		}
		if strings.HasPrefix(n.Text, "bisection round") {
			rounds++
			if err := sb.checkRound(ctx, batch.Base, batch.Commit); err != nil {
				return fmt.Errorf("after bisection round %d: %w", rounds, err)
			}
			fmt.Fprintf(out, "    check after round %d: every host serves exactly its commit's tree; production still serves the base %.10s\n", rounds, batch.Base)
		}
	}
	sb.say("alice", "!window")
	d, err := sb.Main.Store.Get(id)
	if err != nil {
		return err
	}
	if d.State != deployer.StateDone {
		return fmt.Errorf("batch #%d ended %s (%s), not done", id, d.State, d.Reason)
	}
	if !d.Batch || d.Bisect == nil || rounds == 0 || rounds != len(d.Bisect.Rounds) {
		return fmt.Errorf("batch #%d was not bisected round by round (%d rounds announced)", id, rounds)
	}
	if len(d.Dropped) != 1 || d.Dropped[0].Change.Commit != sidebar || !d.Dropped[0].Guilty {
		return fmt.Errorf("batch #%d dropped %+v, want only Bob's sidebar change, found guilty", id, d.Dropped)
	}
	if len(d.Changes) != 5 {
		return fmt.Errorf("batch #%d shipped %d changes, want the five innocent ones (with core's pointer move)", id, len(d.Changes))
	}
	blocks, err := sb.Main.Store.Blocks()
	if err != nil {
		return err
	}
	blocked := false
	for _, b := range blocks {
		blocked = blocked || b.Change.Commit == sidebar
	}
	if !blocked {
		return errors.New("the sidebar change is not blocked")
	}
	if err := sb.checkFleet(ctx, d.Commit, out); err != nil {
		return err
	}
	// What every host serves: the four innocent changes, not the guilty one.
	for _, h := range sb.Env.Hosts {
		cur := filepath.Join(h.Root, "current")
		cfg, err := os.ReadFile(filepath.Join(cur, "config", "app.json"))
		if err != nil {
			return err
		}
		if strings.Contains(string(cfg), "extra_error_rate") {
			return fmt.Errorf("%s serves the sidebar change", h.Name)
		}
		for p, want := range map[string]string{
			"privacy.html":                             "Privacy policy",
			"i18n/messages-es.json":                    "Bienvenido",
			demo.ReleaseDir + "/includes/WebStart.php": "slower than two seconds",
			demo.ReleaseDir + "/" + demo.ExtensionPath + "/includes/Hooks.php": "Help:Foo",
		} {
			b, err := os.ReadFile(filepath.Join(cur, filepath.FromSlash(p)))
			if err != nil || !strings.Contains(string(b), want) {
				return fmt.Errorf("%s does not serve %s as the batch left it: %v", h.Name, p, err)
			}
		}
	}
	fmt.Fprintf(out, "    check: all %d hosts serve the four innocent changes (and core's pointer move); none serves the sidebar change\n", len(sb.Env.Hosts))
	return nil
}

// checkRound checks the fleet in the middle of a bisection: every host's
// tree is exactly its commit's, the testservers serve the whole batch and
// production the base.
func (sb *sandbox) checkRound(ctx context.Context, base, batch string) error {
	var errs []error
	for stage, hs := range sb.Main.Fleet {
		for _, h := range hs {
			cur, err := h.Current(ctx)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h.Name(), err))
				continue
			}
			switch {
			case stage == deployer.Production && cur != base:
				errs = append(errs, fmt.Errorf("production host %s serves %.10s during the bisection, want the base %.10s", h.Name(), cur, base))
			case stage == deployer.Testservers && cur != batch:
				errs = append(errs, fmt.Errorf("testserver %s serves %.10s during the bisection, want the batch %.10s", h.Name(), cur, batch))
			}
			if hk, ok := h.(interface{ Unwrap() deployer.Host }); ok {
				h = hk.Unwrap()
			}
			if l, ok := h.(*hosts.Local); ok {
				if err := hosts.VerifyHost(ctx, l, sb.Main.Staging); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func containsKind(ks []deployer.NoticeKind, k deployer.NoticeKind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}
