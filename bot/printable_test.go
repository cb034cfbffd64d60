package bot

import "testing"

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"fix the parser", "fix the parser"},
		{"tab\tstays", "tab\tstays"},
		{"no\r\nsecond line", "nosecond line"},
		{"\x1b]52;c;ZXZpbA==\x07clipboard", "]52;c;ZXZpbA==clipboard"},
		{"ctcp \x01VERSION\x01", "ctcp VERSION"},
		{"c1 \u009bcontrol", "c1 control"},
		// "Trojan Source": an override makes "// admin only" read backwards.
		{"if ok \u202e} \u2066// admin only\u2069 \u2066{", "if ok } // admin only {"},
		{"mark \u200fhere\u200e", "mark here"},
		{"bad \xff utf-8", "bad \uFFFD utf-8"},
		{"non-Latin: Überprüfung, 変更, עברית", "non-Latin: Überprüfung, 変更, עברית"},
	} {
		if got := Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
