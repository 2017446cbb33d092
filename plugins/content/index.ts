import { definePlugin } from '../shared/adapter';

export = definePlugin('content');
