import { definePlugin } from '../shared/adapter';

// Everything runs at data_post, for inbound and relayed (outbound) mail alike:
// relayed mail is signed and its Message-ID recorded, inbound bounces are
// validated and every inbound message passes the subject-flood throttle.
export = definePlugin('backscatter');
