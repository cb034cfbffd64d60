// Package deployer is the centre of deploybot: the Deployment, its states, the
// runner that moves it through the pipeline, and the interfaces the runner
// needs from the outside world (Store, ChangeSource, Staging, Host, Metrics,
// Judge, Announcer). It imports none of the packages that implement them.
package deployer

import (
	"context"
	"io"
	"strings"
	"time"
)

// Stage is a group of hosts synced together. The pipeline syncs them in the
// order of Stages.
type Stage string

// The three stages, in the order the pipeline syncs them.
const (
	Testservers Stage = "testservers"
	Canaries    Stage = "canaries"
	Production  Stage = "production"
)

// Stages lists the stages in pipeline order.
var Stages = []Stage{Testservers, Canaries, Production}

// Change is one upstream change a deployment ships: a git commit, or a Gerrit
// change together with the commit it merged as.
type Change struct {
	ID          string   `json:"id"`               // commit hash (git) or change number (Gerrit)
	Commit      string   `json:"commit,omitempty"` // upstream commit, when known
	Subject     string   `json:"subject"`
	Author      string   `json:"author"`
	AuthorEmail string   `json:"author_email,omitempty"`
	Owner       string   `json:"owner,omitempty"` // Gerrit account username, when known
	URL         string   `json:"url,omitempty"`
	Bugs        []string `json:"bugs,omitempty"`
	// Reverts is the commit (or change) this change reverts, when it is a
	// revert. A revert is never blamed for what it reverts: reverting it
	// would ship that again.
	Reverts string `json:"reverts,omitempty"`
	// Unexpected is set when the change was not asked for by name and
	// ships only because the request said --include-unexpected.
	Unexpected bool `json:"unexpected,omitempty"`
	// Pointer is set, with a composite source, on a commit nobody named
	// that changes nothing but submodule pointers (Gerrit's superproject
	// subscription makes one when a submodule change merges): it ships
	// the submodule commits listed with it.
	Pointer bool `json:"pointer,omitempty"`
	// Component is the deploy path of the component or submodule the
	// change belongs to, with a composite source ("" for the root, and
	// always with a single-repository source).
	Component string `json:"component,omitempty"`
}

// Deployment is one request to ship one or more changes, from the moment it
// is queued until it is done, rolled back, failed or cancelled. It is stored
// whole (as JSON) on every change, so every field here survives a restart.
type Deployment struct {
	ID                int64    `json:"id"`
	State             State    `json:"state"`
	Requester         string   `json:"requester"` // chat identity of who asked
	Submitter         string   `json:"submitter"` // chat identity pinged to verify
	Refs              []string `json:"refs"`      // what was asked for, as typed
	IncludeUnexpected bool     `json:"include_unexpected,omitempty"`

	Changes      []Change `json:"changes,omitempty"`
	Upstream     string   `json:"upstream,omitempty"`      // upstream commit this deployment ships
	PrevUpstream string   `json:"prev_upstream,omitempty"` // upstream commit deployed before it
	Base         string   `json:"base,omitempty"`          // staging commit the hosts served before
	// PrevDeployment is the deployment whose outcome Base is (0: the
	// baseline), so people read "back on what #3 deployed", not a hash.
	PrevDeployment int64    `json:"prev_deployment,omitempty"`
	Commit         string   `json:"commit,omitempty"` // staging commit of this deployment
	Files          []string `json:"files,omitempty"`  // paths that differ between Base and Commit

	// Touched lists every host that may have received Commit. A host is added
	// before its sync starts, so a crash mid-sync still rolls it back.
	Touched []string `json:"touched,omitempty"`
	// FailedHosts lists hosts that could not be synced or restored, with why.
	FailedHosts map[string]string `json:"failed_hosts,omitempty"`

	// Deadline is when the current wait (verification, promotion) runs out.
	Deadline time.Time `json:"deadline,omitzero"`
	Reminded bool      `json:"reminded,omitempty"`
	// VerifiedBy is who answered `verified`.
	VerifiedBy string `json:"verified_by,omitempty"`
	// MetricsWaived is set when a deployer chose to sync the canaries
	// although some of their metrics could not be read.
	MetricsWaived bool `json:"metrics_waived,omitempty"`
	// RollbackTries counts the attempts at this deployment's rollback,
	// across restarts; see Config.RollbackTries.
	RollbackTries int `json:"rollback_tries,omitempty"`

	// Baseline holds the canaries' counters read when the verification wait
	// began; WindowStart those of canaries and control hosts read just before
	// the canaries were synced. Together they give the pre-sync baseline.
	Baseline    *Sample   `json:"baseline,omitempty"`
	WindowStart *Sample   `json:"window_start,omitempty"`
	Verdicts    []Verdict `json:"verdicts,omitempty"`

	Reason         string `json:"reason,omitempty"` // why it failed, was cancelled or rolled back
	RollbackCommit string `json:"rollback_commit,omitempty"`
	// Blame is set when the rollback blames the change (a failed check, or
	// a person's rollback): its changes are then blocked from shipping
	// again and reverted upstream when the source can.
	Blame            bool `json:"blame,omitempty"`
	UpstreamReverted bool `json:"upstream_reverted,omitempty"`
	// ProdStart holds production's counters read just before its sync, the
	// start of the production watch.
	ProdStart *Sample `json:"prod_start,omitempty"`
	// Depooled lists hosts this deployment's rollback took out of service
	// because they could not be restored (kept for the timeline; the host
	// records say who is depooled now).
	Depooled []string `json:"depooled,omitempty"`

	// Batch, Emergency, Window, Verified, Dropped and Bisect belong to
	// batches, windows and bisection (batch.go, window.go, bisect.go).
	Batch     bool   `json:"batch,omitempty"`
	Emergency string `json:"emergency,omitempty"` // why it ships outside a window
	Window    string `json:"window,omitempty"`    // the window whose list it deploys
	// Verified maps each change of a batch to who verified it.
	Verified map[string]string `json:"verified,omitempty"`
	// Dropped lists changes taken out of a batch, with why.
	Dropped []DroppedChange `json:"dropped,omitempty"`
	Bisect  *Bisection      `json:"bisect,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// Title names the deployment's changes in one short phrase for chat.
func (d *Deployment) Title() string {
	if len(d.Changes) == 1 {
		c := d.Changes[0]
		return ShortID(c.ID) + " (" + c.Subject + ")"
	}
	if len(d.Changes) > 1 {
		s := ""
		for i, c := range d.Changes {
			if i > 0 {
				s += ", "
			}
			s += ShortID(c.ID)
		}
		return s
	}
	s := ""
	for i, r := range d.Refs {
		if i > 0 {
			s += " "
		}
		s += r
	}
	return s
}

// ShortID is how a change's id is written in chat: a full commit id cut to
// 10 digits, also after a component's prefix ("php-1.46.0-wmf.3:576ee0616e");
// anything else (a Gerrit change number, a ref) as it is. Every command that
// takes a change back accepts the short form.
func ShortID(id string) string {
	prefix, hash := "", id
	if i := strings.LastIndexByte(id, ':'); i >= 0 {
		prefix, hash = id[:i+1], id[i+1:]
	}
	if len(hash) == 40 && strings.Trim(hash, "0123456789abcdef") == "" {
		return prefix + hash[:10]
	}
	return id
}

// Event is one line of a deployment's timeline: who did what, when, and with
// what result. Events are appended, never changed.
type Event struct {
	Deployment int64     `json:"deployment"`
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"` // a chat identity, or "deploybot"
	Kind       string    `json:"kind"`  // e.g. "state", "command", "refused", "sync", "verdict"
	Message    string    `json:"message"`
	From       State     `json:"from,omitempty"`
	To         State     `json:"to,omitempty"`
}

// Lock is a deployment freeze: new backports queue but do not start.
type Lock struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// ErrNotFound is returned by a Store for an id it does not hold.
var ErrNotFound = Errorf(ENotFound, "no such deployment")

// ErrConflict is returned by Store.Transition when the deployment is no
// longer in the state the caller expected.
var ErrConflict = Errorf(EConflict, "the deployment changed state meanwhile")

// Store keeps deployments, their timelines and the lock. Every method is one
// transaction. Implementations: store (bbolt).
type Store interface {
	// Create assigns the next id, stores d (its State must be queued) and
	// returns the id.
	Create(d *Deployment) (int64, error)
	// Get returns the deployment with this id, or ErrNotFound.
	Get(id int64) (*Deployment, error)
	// Transition moves deployment id from state from to state to, after
	// applying mutate (which may be nil) to it, and appends ev (Deployment,
	// From and To are filled in) to its timeline, all in one transaction. It
	// fails with ErrConflict, changing nothing, when the stored state is not
	// from, and with an error when CanTransition(from, to) is false.
	Transition(id int64, from, to State, ev Event, mutate func(*Deployment)) (*Deployment, error)
	// Update applies mutate to deployment id without changing its state
	// (mutate must not change State) and stores it.
	Update(id int64, mutate func(*Deployment)) (*Deployment, error)
	// AppendEvent adds ev to its deployment's timeline (ev.Deployment may be 0
	// for events about no deployment, such as a refused command).
	AppendEvent(ev Event) error
	// Events returns a deployment's timeline, oldest first.
	Events(id int64) ([]Event, error)
	// List returns up to limit deployments, newest first, skipping the
	// first offset.
	List(offset, limit int) ([]*Deployment, error)
	// Unfinished returns every deployment whose state is not Finished
	// (queued ones included), oldest first: the queue and the one running.
	Unfinished() ([]*Deployment, error)
	// Lock returns the freeze, or nil when there is none.
	Lock() (*Lock, error)
	// SetLock sets the freeze (nil lifts it).
	SetLock(l *Lock) error
	Blocks
	// Landed returns the latest deployment whose outcome the fleet serves
	// (the last to enter a state s with s.Landed()), or nil.
	Landed() (*Deployment, error)
	// Hosts returns what the store says each host serves, by host name.
	Hosts() (map[string]HostRecord, error)
	// UpdateHosts applies mutate to each named host's record (a record
	// with only Name set when there is none) and stores them, in one
	// transaction.
	UpdateHosts(names []string, mutate func(*HostRecord)) error
	Close() error
}

// HostRecord is what the store says one host serves. The runner writes it
// from what it reads back after every sync, restore and check, so it is the
// one place that answers "what is on mw1001?" without asking the host.
type HostRecord struct {
	Name string `json:"name"`
	// Commit is the staging commit the host was last read back serving
	// ("" when it serves nothing).
	Commit string `json:"commit"`
	// Target is set while a sync towards it is under way; a record found
	// with Target set after a crash means the host may serve either.
	Target string `json:"target,omitempty"`
	// Deployment is the deployment whose sync or restore last wrote it.
	Deployment int64 `json:"deployment,omitempty"`
	// Behind, when set, says in words why the host is not on the commit the
	// fleet serves (a failed sync within max_failed_hosts, a restore that
	// failed); a sync that brings it up to date clears it.
	Behind string `json:"behind,omitempty"`
	// Unknown is set when the host could not be read back: nobody knows
	// what it serves.
	Unknown bool `json:"unknown,omitempty"`
	// Depooled is set while the host is out of service because a rollback
	// could not restore it; DepooledBy is that deployment.
	Depooled   bool      `json:"depooled,omitempty"`
	DepooledBy int64     `json:"depooled_by,omitempty"`
	Time       time.Time `json:"time,omitzero"`
}

// FileMode is the kind of a file in a deployed tree, as git records it.
type FileMode int

// File kinds a tree can hold. Git has no other modes for content we deploy.
const (
	ModeRegular FileMode = iota
	ModeExecutable
	ModeSymlink
)

// FileChange is one path that differs between two commits. For a deletion
// only Path is meaningful.
type FileChange struct {
	Path   string   // slash-separated, relative to the tree root
	Delete bool     // the path does not exist in the target commit
	Mode   FileMode // the target's mode
	Hash   string   // the target blob's git hash (hex)
	Size   int64
	// Open returns the target contents (for a symlink, its target path).
	Open func() (io.ReadCloser, error)
}

// TreeSource is what a host needs to bring a slot from one commit to another.
// Implementations: deployer/gitrepo.
type TreeSource interface {
	// Diff lists the paths whose content, mode or existence differs between
	// commit from and commit to, sorted by path. from == "" means the empty
	// tree, so Diff("", c) lists every file of c.
	Diff(ctx context.Context, from, to string) ([]FileChange, error)
}

// Host is one target machine (or directory) with two slots and a current
// link. Implementations: deployer/hosts (local; ssh).
type Host interface {
	Name() string
	// Sync makes the host serve commit. When the active slot already holds
	// it, nothing happens; when the inactive slot holds it, Sync only flips;
	// otherwise it writes what differs into the inactive slot, records the
	// commit there last and flips current atomically. Sync is idempotent and
	// safe to redo after a crash at any point.
	Sync(ctx context.Context, commit string, src TreeSource) error
	// Current reads back the commit the host serves now ("" when none).
	Current(ctx context.Context) (string, error)
}

// Fleet is the configured hosts by stage.
type Fleet map[Stage][]Host

// Hosts returns every host of every stage, in pipeline order.
func (f Fleet) Hosts() []Host {
	var all []Host
	for _, s := range Stages {
		all = append(all, f[s]...)
	}
	return all
}

// Host returns the host with this name, or nil.
func (f Fleet) Host(name string) Host {
	for _, h := range f.Hosts() {
		if h.Name() == name {
			return h
		}
	}
	return nil
}

// Request is what a person asked the bot to deploy.
type Request struct {
	Refs              []string
	IncludeUnexpected bool
	Requester         string
	// Batch asks for the refs to be deployed as one batch whose changes
	// are verified, and bisected on a canary failure, one by one.
	Batch bool
	// Emergency is why a backport must go out outside the windows.
	Emergency string
	// Window is the key of the window whose list is deployed ("" none).
	Window string
	// Deployment is the id of the deployment being prepared, for the
	// source's log lines (0 when there is none yet).
	Deployment int64
}

// Prepared is a validated request: the upstream commit to deploy and the
// changes between what is deployed and it.
type Prepared struct {
	Upstream string
	Changes  []Change
	// Notes are lines worth telling the channel when the change is staged
	// (e.g. a change and its revert that cancel out).
	Notes []string
}

// ChangeSource turns a request into an upstream commit to deploy.
// Implementations: deployer/gitrepo (git), deployer/gerrit.
type ChangeSource interface {
	// Prepare resolves and validates req against prevUpstream, the upstream
	// commit deployed now ("" when nothing was deployed), makes the upstream
	// commit available to Staging, and returns it. Problems a person can fix
	// are *Error values with a message meant for chat. progress, which may
	// be nil, receives lines worth announcing while it waits (e.g. merges).
	Prepare(ctx context.Context, req Request, prevUpstream string, progress func(string)) (*Prepared, error)
	// Baseline fetches the configured branch and returns its tip: the
	// upstream commit the fleet is taken to serve when nothing was deployed
	// yet (the staging repo's first commit).
	Baseline(ctx context.Context) (string, error)
}

// Staging is the deploy host's git repository whose deploy branch records
// one commit per deployment and per rollback.
type Staging interface {
	TreeSource
	// Head returns the deploy branch's tip and the upstream commit whose tree
	// it holds ("", "" when the branch does not exist yet).
	Head(ctx context.Context) (commit, upstream string, err error)
	// Commit adds a commit to the deploy branch whose tree is the tree of
	// the upstream commit, with parent the current tip, and returns it. The
	// message records the deployment id, requester and changes.
	Commit(ctx context.Context, d *Deployment, upstream string) (string, error)
	// Revert adds a commit to the deploy branch whose tree is the tree of
	// staging commit to (what the hosts were restored to), recording why.
	Revert(ctx context.Context, d *Deployment, to string, reason string) (string, error)
	// Changed lists the paths that differ between two staging commits.
	Changed(ctx context.Context, from, to string) ([]string, error)
}

// Counts are cumulative counters read from one host at one moment.
type Counts struct {
	Requests float64 `json:"requests"`
	Errors   float64 `json:"errors"`
	Err      string  `json:"err,omitempty"` // why the host could not be read
}

// Sample is one reading of several hosts' counters.
type Sample struct {
	Time  time.Time         `json:"time"`
	Hosts map[string]Counts `json:"hosts"`
}

// Metrics reads request and error counters. Implementations: deployer/judge
// (scrape, Prometheus).
type Metrics interface {
	// Read returns each host's cumulative counters now. A host that cannot
	// be read is present with Err set; err is for the source as a whole.
	Read(ctx context.Context, hosts []string) (Sample, error)
}

// Outcome is a judge's decision.
type Outcome string

// The three verdicts. There is no silent pass: too little evidence is
// inconclusive.
const (
	Pass         Outcome = "pass"
	Fail         Outcome = "fail"
	Inconclusive Outcome = "inconclusive"
	Pending      Outcome = "pending" // only while the window is still open
)

// HostResult is the judge's view of one host over the window.
type HostResult struct {
	Host      string  `json:"host"`
	Requests  float64 `json:"requests"`
	Errors    float64 `json:"errors"`
	Rate      float64 `json:"rate"`
	Threshold float64 `json:"threshold"`
	Outcome   Outcome `json:"outcome"`
	Why       string  `json:"why,omitempty"`
}

// Verdict is the judge's decision about a stage, with its numbers.
type Verdict struct {
	Stage    Stage        `json:"stage"`
	Outcome  Outcome      `json:"outcome"`
	Reason   string       `json:"reason"` // one sentence for chat
	Baseline Baseline     `json:"baseline"`
	Hosts    []HostResult `json:"hosts"`
	Start    time.Time    `json:"start"`
	End      time.Time    `json:"end"`
	Samples  []Sample     `json:"samples,omitempty"`
	// Control, Before and Complete are the rest of the Window the verdict
	// was decided on (Samples holds its Start and readings), so that
	// `deploybot judge replay` can rebuild it exactly.
	Control  []string `json:"control,omitempty"`
	Before   *Sample  `json:"before,omitempty"`
	Complete bool     `json:"complete,omitempty"`
}

// Baseline is the error rate the judged hosts are compared with.
type Baseline struct {
	Requests float64 `json:"requests"`
	Errors   float64 `json:"errors"`
	Rate     float64 `json:"rate"`
	Source   string  `json:"source"` // which hosts and window it came from
}

// Window is what the judge sees: the judged hosts' samples since the sync,
// the control hosts (not yet synced) over the same time, and the counters
// of both before the sync.
type Window struct {
	Stage    Stage
	Judged   []string // hosts that received the change
	Control  []string // hosts still on the old commit
	Before   *Sample  // pre-sync readings of the judged and control hosts (may be nil)
	Start    Sample   // readings at the start of the window (judged + control)
	Samples  []Sample // readings since, oldest first
	Complete bool     // the configured window has fully elapsed
}

// Judge decides a stage's verdict. It is called after every sample; it may
// return Pending while Complete is false and must not return Pending when it
// is true. Implementations: deployer/judge.
type Judge interface {
	Judge(w Window) Verdict
}

// Notice is something the pipeline tells the channel. Adapters render it.
type Notice struct {
	Deployment int64
	Kind       NoticeKind
	Text       string   // plain text, one or more lines
	Mention    []string // chat identities to ping
	// Next lists what people may do now; the bot renders them after the
	// text with the chat's prefix (and adapters may show them as buttons).
	Next []Choice
	// Choices are Next rendered as commands, with the chat's prefix,
	// filled in by the bot for adapters that offer buttons.
	Choices []string
	Verdict *Verdict // set on verdict notices
	State   State    // the deployment's state when sent
}

// NoticeKind says what a Notice is about, so adapters can render it (e.g.
// buttons on prompts, a thread per deployment).
type NoticeKind string

// Kinds of notices.
const (
	NoticeQueued     NoticeKind = "queued"
	NoticeStarted    NoticeKind = "started"
	NoticeProgress   NoticeKind = "progress"
	NoticeVerify     NoticeKind = "verify" // a prompt: verified / abort
	NoticeReminder   NoticeKind = "reminder"
	NoticeVerified   NoticeKind = "verified"
	NoticeVerdict    NoticeKind = "verdict"
	NoticePromote    NoticeKind = "promote" // a prompt: promote / rollback
	NoticeDone       NoticeKind = "done"
	NoticeRolledBack NoticeKind = "rolled-back"
	NoticeFailed     NoticeKind = "failed"
	NoticeCancelled  NoticeKind = "cancelled"
	NoticeInfo       NoticeKind = "info"
)

// Announcer delivers notices to every chat the bot is in.
type Announcer interface {
	Announce(n Notice)
}

// UnexpectedError is a ChangeSource's refusal to ship commits nobody asked
// for by name. The pipeline reads Changes to say first when one of them is
// a blocked, rolled-back change.
type UnexpectedError struct {
	Err     *Error
	Changes []Change
}

func (e *UnexpectedError) Error() string { return e.Err.Message }

// Unwrap gives the application error, so ErrorMessage and ErrorCode see it.
func (e *UnexpectedError) Unwrap() error { return e.Err }
