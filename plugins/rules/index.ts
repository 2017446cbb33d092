import { definePlugin } from '../shared/adapter';

// Filter rules at MAIL and RCPT (envelope-only blocks) and at DATA (every
// rule, then the allowed- and blocked-sender lists). mailward.rules is read
// through Haraka's config loader with the ini files: a broken edit is logged
// and the last good rules stay in force (plugins/shared/runtime.ts).
export = definePlugin('rules');
