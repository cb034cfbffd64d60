package gerrit

// The JSON entities of Gerrit's REST API that this package reads and
// writes, with only the fields it uses. Names follow Gerrit's
// Documentation/rest-api-changes.txt; the fake in gerrittest serves the
// same types, so both sides agree on one definition.

// Change statuses as Gerrit reports them.
const (
	StatusNew       = "NEW"
	StatusMerged    = "MERGED"
	StatusAbandoned = "ABANDONED"
)

// Labels the bot reads or votes on.
const (
	CodeReview = "Code-Review"
	Verified   = "Verified"
)

// AccountInfo is a Gerrit account. Username and Email are only filled
// with o=DETAILED_ACCOUNTS.
type AccountInfo struct {
	AccountID int    `json:"_account_id"`
	Name      string `json:"name,omitempty"`
	Email     string `json:"email,omitempty"`
	Username  string `json:"username,omitempty"`
}

// Display names an account for chat.
func (a AccountInfo) Display() string {
	switch {
	case a.Name != "":
		return a.Name
	case a.Username != "":
		return a.Username
	}
	return "an account"
}

// ApprovalInfo is one account's vote on a label.
type ApprovalInfo struct {
	AccountInfo
	Value int `json:"value"`
	// Date is Gerrit's timestamp, "2006-01-02 15:04:05.000000000" in UTC.
	Date string `json:"date,omitempty"`
}

// LabelInfo is a label's votes (o=DETAILED_LABELS fills All).
type LabelInfo struct {
	All      []ApprovalInfo `json:"all,omitempty"`
	Approved *AccountInfo   `json:"approved,omitempty"`
	Rejected *AccountInfo   `json:"rejected,omitempty"`
}

// GitPersonInfo is a commit's author or committer.
type GitPersonInfo struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Date  string `json:"date,omitempty"`
}

// CommitInfo is a commit as Gerrit describes it.
type CommitInfo struct {
	Commit    string        `json:"commit,omitempty"`
	Parents   []CommitInfo  `json:"parents,omitempty"`
	Author    GitPersonInfo `json:"author"`
	Committer GitPersonInfo `json:"committer"`
	Subject   string        `json:"subject"`
	Message   string        `json:"message,omitempty"`
}

// RevisionInfo is one patch set.
type RevisionInfo struct {
	Number int    `json:"_number"`
	Ref    string `json:"ref,omitempty"`
	// Kind is how the patch set differs from the one before it (one of
	// the Kind constants).
	Kind   string      `json:"kind,omitempty"`
	Commit *CommitInfo `json:"commit,omitempty"`
}

// Change kinds (RevisionInfo.Kind): how a patch set differs from the
// previous one. Only KindRework changes what the change does; the others
// are rebases without conflict (as a submit makes) or message edits.
const (
	KindRework                         = "REWORK"
	KindTrivialRebase                  = "TRIVIAL_REBASE"
	KindTrivialRebaseWithMessageUpdate = "TRIVIAL_REBASE_WITH_MESSAGE_UPDATE"
	KindMergeFirstParentUpdate         = "MERGE_FIRST_PARENT_UPDATE"
	KindNoCodeChange                   = "NO_CODE_CHANGE"
	KindNoChange                       = "NO_CHANGE"
)

// ChangeInfo is a change. CurrentRevision and Revisions need
// o=CURRENT_REVISION (and o=CURRENT_COMMIT for the commit), Labels need
// o=LABELS and o=DETAILED_LABELS.
type ChangeInfo struct {
	ID              string                  `json:"id"`
	Project         string                  `json:"project"`
	Branch          string                  `json:"branch"`
	Topic           string                  `json:"topic,omitempty"`
	ChangeID        string                  `json:"change_id"`
	Subject         string                  `json:"subject"`
	Status          string                  `json:"status"`
	Number          int                     `json:"_number"`
	Owner           AccountInfo             `json:"owner"`
	WorkInProgress  bool                    `json:"work_in_progress,omitempty"`
	Mergeable       *bool                   `json:"mergeable,omitempty"`
	CurrentRevision string                  `json:"current_revision,omitempty"`
	Revisions       map[string]RevisionInfo `json:"revisions,omitempty"`
	Labels          map[string]LabelInfo    `json:"labels,omitempty"`
	RevertOf        int                     `json:"revert_of,omitempty"`
	Submitted       string                  `json:"submitted,omitempty"`
}

// current returns the current patch set and its commit (nil when the
// response did not include them).
func (c *ChangeInfo) current() (RevisionInfo, *CommitInfo) {
	r, ok := c.Revisions[c.CurrentRevision]
	if !ok {
		return RevisionInfo{}, nil
	}
	return r, r.Commit
}

// MergeableInfo answers GET .../revisions/{rev}/mergeable.
type MergeableInfo struct {
	SubmitType string `json:"submit_type"`
	Mergeable  bool   `json:"mergeable"`
}

// RelatedChangesInfo answers GET .../revisions/{rev}/related: the
// relation chain, descendants first, then the change itself, then its
// ancestors.
type RelatedChangesInfo struct {
	Changes []RelatedChangeAndCommitInfo `json:"changes"`
}

// RelatedChangeAndCommitInfo is one change of a relation chain.
type RelatedChangeAndCommitInfo struct {
	Project               string     `json:"project,omitempty"`
	ChangeID              string     `json:"change_id,omitempty"`
	Commit                CommitInfo `json:"commit"`
	ChangeNumber          int        `json:"_change_number,omitempty"`
	RevisionNumber        int        `json:"_revision_number,omitempty"`
	CurrentRevisionNumber int        `json:"_current_revision_number,omitempty"`
	Status                string     `json:"status,omitempty"`
}

// ReviewInput is the body of POST .../revisions/{rev}/review.
type ReviewInput struct {
	Message string         `json:"message,omitempty"`
	Labels  map[string]int `json:"labels,omitempty"`
	Tag     string         `json:"tag,omitempty"`
}

// RevertInput is the body of POST /changes/{id}/revert.
type RevertInput struct {
	Message string `json:"message,omitempty"`
}

// ChangeMessageInfo is one message on a change (GET .../messages).
type ChangeMessageInfo struct {
	ID      string       `json:"id"`
	Author  *AccountInfo `json:"author,omitempty"`
	Date    string       `json:"date,omitempty"`
	Message string       `json:"message"`
	Tag     string       `json:"tag,omitempty"`
}

// TimeLayout is the layout of Gerrit's timestamps (always UTC).
const TimeLayout = "2006-01-02 15:04:05.000000000"
