import { definePlugin } from '../shared/adapter';
import { restoreAuthResults, shareAuthResults } from '../shared/auth-results';
import { existingTransactionState } from '../shared/state';

// Haraka writes one Authentication-Results field of its own when its plugins
// report results, and removes every other: ours is handed to it right after
// the check and, for a plugin that reports later, before any queue plugin
// delivers (auth-results.ts).
export = definePlugin('auth', {
  afterData: shareAuthResults,
  hooks: {
    async queue(connection) {
      const state = existingTransactionState(connection.transaction);
      if (state) restoreAuthResults(state, connection);
    },
    async queue_outbound(connection) {
      const state = existingTransactionState(connection.transaction);
      if (state) restoreAuthResults(state, connection);
    },
  },
  // Before any queue plugin reads the message (the verdict's quarantine hook runs at -100 too).
  hookPriorities: { queue: -100, queue_outbound: -100 },
});
