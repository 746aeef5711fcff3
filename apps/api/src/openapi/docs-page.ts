/**
 * `GET /docs`: the API's document in Swagger UI, served from the swagger-ui-dist package (no
 * CDN: the page works where the API does). Only the UI's own files are served, never the
 * package's demo page or its initializer pointing at another API.
 */
import path from 'node:path';
import express, { Router } from 'express';

const ASSETS = path.dirname(require.resolve('swagger-ui-dist/package.json'));
const SERVED = /^\/(swagger-ui(-bundle|-standalone-preset)?\.js|swagger-ui\.css|index\.css|favicon-(16x16|32x32)\.png)$/;

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Diffusion farm API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="stylesheet" href="/docs/index.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: '/openapi.json',
      dom_id: '#swagger-ui',
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: 'StandaloneLayout',
    });
  </script>
</body>
</html>
`;

export function docsPage(): Router {
  const router = Router();
  router.get('/', (_req, res) => {
    res.type('html').send(PAGE);
  });
  const files = express.static(ASSETS, { index: false, maxAge: '1h' });
  router.use((req, res, next) => (req.method === 'GET' && SERVED.test(req.path) ? files(req, res, next) : next()));
  return router;
}
