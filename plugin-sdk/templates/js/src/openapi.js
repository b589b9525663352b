// The OpenAPI 3 document of {{name}}: every route of the manifest, described for merchants.
export const OPENAPI = {
  openapi: '3.0.3',
  info: { title: '{{name}}', version: '0.1.0' },
  paths: {
    '/v1/hello': {
      get: {
        summary: 'Who is calling: the merchant the bearer token belongs to',
        security: [{ bearer: [] }],
        responses: {
          200: {
            description: 'The merchant',
            content: {
              'application/json': {
                schema: { type: 'object', properties: { merchant_id: { type: 'string' } } },
              },
            },
          },
          401: { description: 'Missing or unknown token' },
        },
      },
    },
  },
  components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
};
