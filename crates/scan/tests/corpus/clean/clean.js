const path = require('path');
console.log(JSON.parse('{"a": 1}'), path.join('a', 'b'));
